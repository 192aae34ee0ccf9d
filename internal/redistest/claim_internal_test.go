package redistest

import (
	"testing"
)

// Test binaries that share a server named by REKEY_TEST_REDIS_URL each
// count its databases from 0: a database one binary holds is not handed to
// another, which would flush it under the first's test; one freed is
// handed out again.
func TestASharedServersDatabaseIsHeldByOneTestBinaryAtATime(t *testing.T) {
	addr, cmd, err := runServer(FreePort(t), 4, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	binary := func() *source { return &source{addr: addr, dbs: 4, kind: "url"} } // its count starts at 0
	first, free, err := binary().reserve()
	if err != nil {
		t.Fatal(err)
	}
	held := map[int]bool{first: true}
	for range 2 {
		db, _, err := binary().reserve()
		if err != nil {
			t.Fatal(err)
		}
		if held[db] || db == 3 {
			t.Fatalf("database %d handed out while held, or the claims' own (held %v)", db, held)
		}
		held[db] = true
	}
	free()
	again, _, err := binary().reserve()
	if err != nil || again != first {
		t.Fatalf("after its release: database %d, %v; want %d, the only one free", again, err, first)
	}
}
