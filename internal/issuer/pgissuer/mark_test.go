package pgissuer

import "testing"

// A mark records where its role was minted, whatever the database and owner
// are called, and an earlier mark (instance and rotation only) still reads.
func TestMarkRecordsTheLocation(t *testing.T) {
	loc := Location{Server: "eu-1", Database: `d "8" server=x owner="y"`, Owner: "o wner\n"}
	m, ok := parseMark(roleMark("inst-1", "rot-1", loc), "inst-1")
	if !ok || m != (mark{rotation: "rot-1", located: true, server: "eu-1", database: loc.Database, owner: loc.Owner}) {
		t.Fatalf("parseMark(roleMark) = %+v, %v", m, ok)
	}
	if m, ok := parseMark("rekey instance=inst-1 rotation=rot-1", "inst-1"); !ok || m != (mark{rotation: "rot-1"}) {
		t.Fatalf("an earlier mark reads as %+v, %v", m, ok)
	}
	for _, c := range []string{
		"", "rekey instance=inst-1 rotation=", "rekey instance=inst-2 rotation=rot-1",
		roleMark("inst-1x", "rot-1", loc),
	} {
		if m, ok := parseMark(c, "inst-1"); ok {
			t.Fatalf("parseMark(%q) = %+v, want no mark of inst-1", c, m)
		}
	}
	// A tail that is not exactly a location reads as an earlier mark's
	// rotation id, which then matches no role name.
	if m, _ := parseMark(`rekey instance=inst-1 rotation=rot-1 server=eu-1 database="d"`, "inst-1"); m.located {
		t.Fatalf("an incomplete location read as %+v", m)
	}
}
