package reconcile_test

import (
	"context"
	"testing"
)

// The sweep gives a deprovisioned instance's keys their expiry once its
// last waiting credential is revoked, not before.
func TestSweepExpiresADeprovisionedInstanceAfterItsLastRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	prev := w.rotated(t, "gone")
	if err := w.st.Deprovision(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if res, err := w.sweep.Sweep(ctx); err != nil || res.InstancesExpiring != 0 || res.RevokesEnqueued != 1 {
		t.Fatalf("Sweep = %+v, %v; want the waiting revocation enqueued and no expiry", res, err)
	}
	if d, _ := w.st.InstanceExpiry(ctx, "gone"); d != 0 {
		t.Fatalf("instance expires in %s while %s waits for revocation", d, prev.CredentialID)
	}
	if err := w.st.MarkRevoked(ctx, prev.InstanceID, prev.CredentialID); err != nil {
		t.Fatal(err)
	}
	if res, err := w.sweep.Sweep(ctx); err != nil || res.InstancesExpiring != 1 {
		t.Fatalf("Sweep = %+v, %v; want the instance's expiry set", res, err)
	}
	if d, _ := w.st.InstanceExpiry(ctx, "gone"); d <= 0 {
		t.Errorf("instance has no expiry after its last revocation")
	}
}
