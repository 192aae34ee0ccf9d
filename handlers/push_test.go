package handlers_test

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestRefusedRepushOfAnAppliedCredentialPromotes covers a push whose first
// answer was lost although Heroku applied it: when a later push is refused
// (here 422), the handler reads the config back, finds the credential there
// and promotes it, instead of discarding and revoking a credential the apps
// already use (I1).
func TestRefusedRepushOfAnAppliedCredentialPromotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(500))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil {
		t.Fatal("first run succeeded, want the scripted 500")
	}
	rot, err := g.st.Rotation(ctx, "rot-1")
	if err != nil || !rot.PushAttempted || rot.State != store.RotationMinted {
		t.Fatalf("rotation after the 500 = %+v, %v; want minted with a push attempted", rot, err)
	}
	// The lost answer: Heroku applied the push all the same.
	cfg, err := g.st.PendingConfig(ctx, "inst-1", rot.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	var vars []heroku.ConfigVar
	for name, v := range cfg {
		vars = append(vars, heroku.ConfigVar{Name: name, Value: v})
	}
	target := heroku.Target{AddonID: "inst-1", APIVersion: store.APIv3}
	if err := g.deps.Heroku.UpdateConfig(ctx, target, vars); err != nil {
		t.Fatal(err)
	}
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(422))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err != nil {
		t.Fatalf("rerun after a refused push = %v, want the rotation promoted", err)
	}
	in, _ := g.st.Instance(ctx, "inst-1")
	if in.CurrentCredential != rot.CredentialID || g.configCredential(t, "inst-1") != rot.CredentialID {
		t.Fatalf("current %s, config holds %s; want both %s", in.CurrentCredential, g.configCredential(t, "inst-1"), rot.CredentialID)
	}
	if !g.demo.Valid(rot.CredentialID) {
		t.Fatal("the credential Heroku holds was revoked")
	}
}

// TestRefusedPushOfAnUnappliedCredentialDiscards is the other side: when
// Heroku does not hold the credential and refused every push (a 429, then
// a 422), the read-back proves it and the credential is discarded. (A push
// answered 5xx may have been applied: pushanswer_test.go.)
func TestRefusedPushOfAnUnappliedCredentialDiscards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(429), herokufake.Respond(422))
	_ = g.run(rotateTask(t, "inst-1", "rot-1"))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil {
		t.Fatal("rerun succeeded, want the 422 to end the rotation")
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if rot.State != store.RotationFailed || c.State != store.CredentialDiscarded {
		t.Fatalf("rotation %s, credential %s; want failed and discarded", rot.State, c.State)
	}
}
