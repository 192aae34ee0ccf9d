package store

import (
	"strings"
	"testing"
)

// FuzzDecodeHistory reads history entries as Events does: whatever an
// entry holds (a version's form, a damaged string), reading it must not
// fail the process, and every event it yields belongs to the instance and
// has an id.
func FuzzDecodeHistory(f *testing.F) {
	for _, entry := range strings.Split(previousFormHistory, historySep) {
		f.Add(entry, "cred_0000002a00000000")
	}
	// The third form's shorthands, packed UUID and FS-led hex credentials.
	f.Add("ng2rrco4\x1aPUk_7lFQPUE1uAef\x1eC\x1f\x1f\x1cs\x1eg\x1f2s\x1f\x1d~AAAAKgAKQACAAAAAAAAAAK\x1eH\x1f5k\x1f\x1cG5k0\x1eI\x1e^\x1e+\x1f2s", "")
	f.Add("ng2rrco4\x19rot-1\x1eg\x1f2s\x1f\x1crekey_AAAAKgAAAAAAAK\x1ej\x1f\x1f\x1dS5k0\x1e+\x1e+\x1f-3\x1e^", "k-0")
	f.Add("\x1d\x1e+\x1f\x1e^\x1f\x1d~", "^")
	f.Fuzz(func(t *testing.T, entry, older string) {
		for _, e := range decodeHistory("inst-f", entry, older) {
			if e.InstanceID != "inst-f" || e.ID == "" {
				t.Fatalf("event %+v of entry %q", e, entry)
			}
		}
	})
}
