package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// A hold lives only while its credential waits for revocation: SaveHold
// refuses a revoked credential (another run of its revoke task revoked it)
// and writes nothing, and MarkRevoked deletes a hold saved before it, so
// that no revoked credential is listed as held.
func TestAHoldEndsWithItsCredentialsRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hold := func(f *fixture, cred string) store.Hold {
		c, _ := f.st.Credential(ctx, "inst-1", cred)
		return store.Hold{InstanceID: "inst-1", CredentialID: cred, RevokeAt: c.RevokeAt, HeldAt: f.now,
			CapAt: c.RevokeAt.Add(24 * time.Hour), LastUsedAt: f.now, CheckedAt: f.now}
	}
	held := func(t *testing.T, f *fixture, cred string) {
		t.Helper()
		_, ok, err := f.st.HoldOf(ctx, "inst-1", cred)
		sum, _ := f.st.HoldStats(ctx)
		if err != nil || ok || sum.Held != 0 {
			t.Errorf("hold of revoked %s: %v, %v; holds listed: %d; want none", cred, ok, err, sum.Held)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{name: "saved after the revocation", run: func(t *testing.T, f *fixture) {
			if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
				t.Fatal(err)
			}
			if err := f.st.SaveHold(ctx, hold(f, "cred-0"), store.EventRevocationHeld, "in use"); !errors.Is(err, store.ErrConflict) {
				t.Errorf("SaveHold of a revoked credential = %v, want ErrConflict", err)
			}
		}},
		{name: "saved before the revocation", run: func(t *testing.T, f *fixture) {
			if err := f.st.SaveHold(ctx, hold(f, "cred-0"), store.EventRevocationHeld, "in use"); err != nil {
				t.Fatal(err)
			}
			if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "released before the revocation", run: func(t *testing.T, f *fixture) {
			if err := f.st.SaveHold(ctx, hold(f, "cred-0"), store.EventRevocationHeld, "in use"); err != nil {
				t.Fatal(err)
			}
			if ok, err := f.st.ReleaseHold(ctx, "inst-1", "cred-0", "quiet", f.now); !ok || err != nil {
				t.Fatalf("ReleaseHold = %v, %v", ok, err)
			}
			if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.register(t, "inst-1", "cred-0")
			f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}, "cred-1")
			tc.run(t, f)
			held(t, f, "cred-0")
			if c, _ := f.st.Credential(ctx, "inst-1", "cred-0"); !c.Revoked() {
				t.Errorf("cred-0 = %+v, want revoked", c)
			}
		})
	}
}
