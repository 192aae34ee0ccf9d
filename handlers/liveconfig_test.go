package handlers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer that mixed its tenants up answers inst-2's mint, over its
// webhook, with the config of inst-1's live credential under a new id.
// Nothing is pushed: inst-2's apps keep their own credential, inst-1's
// secret stays out of inst-2's config, and the credential minted is not
// revoked, which would break inst-1's apps. The rotation fails as
// mint:config_live_elsewhere, and no text rekey keeps quotes the secret.
func TestAMintAnsweringAnotherInstancesLiveConfigIsNotPushed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.provision(t, "inst-2", g.reg)
	live := g.fake.Config("inst-1")[issuer.DefaultConfigVar]
	owner := g.configCredential(t, "inst-1")
	before := g.configCredential(t, "inst-2")
	answer, err := json.Marshal(map[string]any{"credential_id": "cred_mixed_up_1",
		"config": map[string]string{issuer.DefaultConfigVar: live}})
	if err != nil {
		t.Fatal(err)
	}
	g.mintAnswers(t, string(answer), false)

	err = g.run(rotateTask(t, "inst-2", "rot-mix"))
	if !isPermanent(err) {
		t.Fatalf("run: %v, want a permanent failure", err)
	}
	if got := g.fake.Config("inst-2")[issuer.DefaultConfigVar]; got == live {
		t.Fatal("inst-1's live credential was pushed into inst-2's config")
	}
	if got := g.configCredential(t, "inst-2"); got != before || !g.demo.Valid(before) {
		t.Errorf("inst-2's config holds %s (valid %v), want its own %s, valid", got, g.demo.Valid(got), before)
	}
	if !g.demo.Valid(owner) {
		t.Errorf("inst-1's credential %s was revoked: its apps are broken", owner)
	}
	if task := g.enq.get(tasks.RevokeTaskID("inst-2", "cred_mixed_up_1")); task != nil {
		t.Errorf("a revoke task was enqueued for the mixed-up credential: it would revoke inst-1's")
	}
	in, _ := g.st.Instance(ctx, "inst-2")
	if in.LastErrorCode != "mint:config_live_elsewhere" {
		t.Errorf("inst-2's last error code %q, want mint:config_live_elsewhere", in.LastErrorCode)
	}
	rot, _ := g.st.Rotation(ctx, "rot-mix")
	events, _ := g.st.Events(ctx, "inst-2", 50)
	texts := []string{err.Error(), rot.Error, in.LastError}
	for _, e := range events {
		texts = append(texts, e.Detail)
	}
	for _, text := range texts {
		if strings.Contains(text, live) {
			t.Errorf("kept text quotes inst-1's live secret: %s", text)
		}
	}
	if rot.State != store.RotationFailed {
		t.Errorf("rotation %s, want failed", rot.State)
	}
}
