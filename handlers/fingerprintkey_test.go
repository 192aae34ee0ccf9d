package handlers_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// A worker whose REKEY_ENCRYPTION_KEYS lack the key the fingerprint key
// was sealed under cannot check any mint for a config reused under another
// id, so it mints nothing; that is the process's fault, not the
// instance's: the rotation is retried, not failed, and the instance is not
// quarantined, so that such a worker cannot set the whole fleet aside.
func TestAFingerprintKeyThatDoesNotOpenQuarantinesNoInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	if err := g.redis.Client.Del(ctx, "rekey:fingerprint_key").Err(); err != nil {
		t.Fatal(err)
	}
	other, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.New(g.redis.Client, other).CheckFingerprintKey(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		err = g.run(rotateTask(t, "inst-1", "rot-fp"))
		if err == nil || isPermanent(err) {
			t.Fatalf("rotate without the fingerprint key: %v, want a retry", err)
		}
	}
	in, err := g.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.Quarantined() || in.InFlight != "rot-fp" {
		t.Errorf("instance quarantined %v, in flight %q; want it left alone with its rotation waiting", in.Quarantined(), in.InFlight)
	}
	if n := g.demo.Stats().MintedPerRotation["rot-fp"]; n != 0 {
		t.Errorf("%d credentials minted without the fingerprint key", n)
	}
}
