package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
)

// TestAConfigsFingerprintsListEachKeyOnce: a config's fingerprints, which
// scripts compare one by one (and look up one by one in the index of live
// configs), are taken once under each distinct key, although the
// fingerprint key's legacy keys are mostly the encryption keys held now;
// a key added since the fingerprint key was made adds its own.
func TestAConfigsFingerprintsListEachKeyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	k1, k2 := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	config := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:p@db.example.com/d")}
	for _, tc := range []struct {
		name string
		keys [][]byte
		want int // fingerprints: the fingerprint key's, then one a distinct encryption key
	}{
		{"the keys it was made under", [][]byte{k1, k2}, 3},
		{"a key added since", [][]byte{bytes.Repeat([]byte{3}, seal.KeySize), k1, k2}, 4},
	} {
		sealer, err := seal.New(tc.keys...)
		if err != nil {
			t.Fatal(err)
		}
		if tc.name == "the keys it was made under" {
			if err := New(r.Client, sealer).CheckFingerprintKey(ctx); err != nil {
				t.Fatal(err)
			}
		}
		fp, all, err := New(r.Client, sealer).configFingerprints(ctx, config)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != tc.want*configFingerprintLen || all[:configFingerprintLen] != fp {
			t.Errorf("%s: %d bytes of fingerprints starting %x, want %d of them starting with %x",
				tc.name, len(all), all[:min(len(all), configFingerprintLen)], tc.want, fp)
		}
		seen := map[string]bool{}
		for i := 0; i < len(all); i += configFingerprintLen {
			f := all[i : i+configFingerprintLen]
			if seen[f] {
				t.Errorf("%s: fingerprint %x listed twice", tc.name, f)
			}
			seen[f] = true
		}
	}
}
