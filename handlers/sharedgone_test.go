package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// inst-2 was provisioned with inst-1's live credential; its rotation moves its apps
// off it and its revocation is refused while inst-1's apps run on it. Then
// inst-1 is deprovisioned instead of rotated: Heroku dropped the config
// from its apps, and rekey never revokes a deprovisioned instance's
// current credential, so its entry stays in the index of live configs for
// good. Nobody's apps hold the credential any more: inst-2's revocation,
// retried, revokes it. Registered again, inst-1 may hold it again, and the
// revocation is refused once more.
func TestASharedCredentialIsRevokedOnceItsOwnerIsDeprovisioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	owner, _, revoke := g.shareAndRotate(t, true)
	g.later.Store(int64(grace + time.Second))
	if err := g.run(revoke); !isPermanent(err) {
		t.Fatalf("inst-2's revocation while inst-1 runs on it: %v, want a permanent refusal", err)
	}
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	// Registered again (Heroku's provisioning retried), its apps may run on
	// the credential again: still refused.
	if err := g.st.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: owner}); err != nil {
		t.Fatal(err)
	}
	if err := g.run(revoke); !isPermanent(err) {
		t.Fatalf("inst-2's revocation once inst-1 was registered again: %v, want a permanent refusal", err)
	}
	if !g.demo.Valid(owner) {
		t.Fatalf("%s was revoked while inst-1, registered again, may run on it", owner)
	}
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if err := g.run(revoke); err != nil {
		t.Errorf("inst-2's revocation retried once inst-1 was deprovisioned: %v", err)
	}
	if c, _ := g.st.Credential(ctx, "inst-2", owner); !c.Revoked() {
		t.Errorf("inst-2's %s is %s after the retry, want revoked", owner, c.State)
	}
}
