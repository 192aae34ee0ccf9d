package handlers_test

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A push is attempted and answered 503, and so is the run's second
// (retried); the partner then
// deprovisions the add-on (DELETE: Heroku removed its config from the
// apps, rekey dropped its tokens). The rerun cannot push or read back.
// Keeping the credential unconfirmed "until the next promotion" would keep
// it live for good, since a deprovisioned instance is never promoted again:
// it must be discarded and revoked after the grace (I3).
func TestUnconfirmedCredentialOfADeprovisionedInstanceIsRevoked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(503), herokufake.Respond(503))
	if err := g.run(rotateTask(t, "inst-1", "rot-d")); err == nil || isPermanent(err) {
		t.Fatalf("first run = %v, want a retryable error", err)
	}
	if rot, _ := g.st.Rotation(ctx, "rot-d"); !rot.PushAttempted {
		t.Fatalf("push not recorded as attempted")
	}
	g.fake.Deprovision("inst-1")
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if err := g.run(rotateTask(t, "inst-1", "rot-d")); !isPermanent(err) {
		t.Fatalf("rerun = %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-d")
	c, err := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	queued := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)) != nil
	if c.State != store.CredentialDiscarded || !queued {
		t.Errorf("credential %s of the deprovisioned instance is %s (revoke queued %v, issuer still honours it %v); want discarded and queued for revocation",
			c.ID, c.State, queued, g.demo.Valid(c.ID))
	}
	// Nothing waits for it either: the retention sweep lets the instance's
	// keys, this credential's record included, expire.
	if expiring, err := g.st.ExpireRetired(ctx, "inst-1"); err != nil || expiring {
		t.Errorf("ExpireRetired = %v, %v: the record of a live, unrevoked credential is set to expire", expiring, err)
	}
}
