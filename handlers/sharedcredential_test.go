package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// The partner provisioned inst-2 with inst-1's live credential (same id,
// same config), and its issuer revokes a credential by id whoever asks.
// inst-2's first rotation gives it a credential of its own; the revocation
// of the one it shared is refused for good, with an event saying why, while
// inst-1's apps still run on it. Once inst-1 rotated and its old credential
// was revoked, the same revoke task (an operator's retry) revokes it for
// inst-2 too. Both ways inst-2's config becomes known: its registration's
// current_config, and the first rotation's read of Heroku's config.
func TestACredentialSharedWithAnotherInstanceIsNotRevokedUnderIt(t *testing.T) {
	t.Parallel()
	for _, withConfig := range []bool{true, false} {
		name := "learned from Heroku"
		if withConfig {
			name = "registered with current_config"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			owner, value, revoke := g.shareAndRotate(t, withConfig)
			g.later.Store(int64(grace + time.Second))
			err := g.run(revoke)
			if !isPermanent(err) {
				t.Errorf("inst-2's revocation of the shared credential: %v, want a permanent refusal", err)
			}
			if !g.demo.Valid(owner) {
				t.Fatalf("inst-2's revocation revoked %s, which inst-1's apps still run on", owner)
			}
			c, _ := g.st.Credential(ctx, "inst-2", owner)
			if c.Revoked() {
				t.Errorf("inst-2's %s is recorded revoked", owner)
			}
			events, _ := g.st.Events(ctx, "inst-2", 50)
			said := false
			for _, e := range events {
				if e.Type == store.EventRevokeFailed && e.CredentialID == owner &&
					strings.Contains(e.Detail, "another instance's live credential") {
					said = true
				}
				if strings.Contains(e.Detail, value) {
					t.Errorf("event %s quotes the shared secret", e.Type)
				}
			}
			if !said {
				t.Error("no revoke_failed event says why the shared credential was not revoked")
			}

			// inst-1 rotates; its old credential is revoked after the grace.
			if err := g.run(rotateTask(t, "inst-1", "rot-1")); err != nil {
				t.Fatalf("inst-1's rotation: %v", err)
			}
			own := g.enq.get(tasks.RevokeTaskID("inst-1", owner))
			if own == nil {
				t.Fatal("no revoke task for inst-1's superseded credential")
			}
			g.later.Store(int64(3*grace + time.Second))
			if err := g.run(own); err != nil {
				t.Fatalf("inst-1's revocation: %v", err)
			}
			if g.demo.Valid(owner) {
				t.Fatalf("inst-1's revocation left %s valid", owner)
			}
			if err := g.run(revoke); err != nil {
				t.Errorf("inst-2's revocation retried once inst-1's credential was revoked: %v", err)
			}
			if c, _ := g.st.Credential(ctx, "inst-2", owner); !c.Revoked() {
				t.Errorf("inst-2's %s is %s after the retry, want revoked", owner, c.State)
			}
		})
	}
}

// revokesByID puts the demo issuer behind a front that revokes credID, the
// credential of instance owner, whichever instance a DELETE names: an
// issuer that knows credentials by id alone.
func (g *rig) revokesByID(t *testing.T, owner, credID string) {
	t.Helper()
	g.overHandler(t, issuer.VerifyAuto, func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodDelete && strings.TrimPrefix(r.URL.Path, "/credentials/") == credID {
				if err := g.demo.Revoke(r.Context(), owner, credID); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
			demo.ServeHTTP(w, r)
		})
	})
}

// shareAndRotate provisions inst-2 with inst-1's live credential (its id
// and config, given as the registration's current_config when withConfig,
// else learned from Heroku's config), puts the issuer behind revokesByID,
// and rotates inst-2. It returns the shared credential's id and value and
// inst-2's revoke task for it.
func (g *rig) shareAndRotate(t *testing.T, withConfig bool) (owner, value string, revoke *asynq.Task) {
	t.Helper()
	ctx := context.Background()
	owner = g.configCredential(t, "inst-1")
	value = g.fake.Config("inst-1")[issuer.DefaultConfigVar]
	if err := g.fake.AddAddon(herokufake.AddonSpec{ID: "inst-2", App: "app-inst-2", ConfigVars: []string{issuer.DefaultConfigVar},
		InitialConfig: map[string]string{issuer.DefaultConfigVar: value}}); err != nil {
		t.Fatal(err)
	}
	in := registry.Input{ID: "inst-2", APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar},
		CurrentCredentialID: owner, OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode("inst-2"))}}
	if withConfig {
		in.CurrentConfig = map[string]secret.String{issuer.DefaultConfigVar: secret.New(value)}
	}
	if err := g.reg.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	g.revokesByID(t, "inst-1", owner)
	if err := g.run(rotateTask(t, "inst-2", "rot-2")); err != nil {
		t.Fatalf("inst-2's rotation: %v", err)
	}
	if got := g.fake.Config("inst-2")[issuer.DefaultConfigVar]; got == value {
		t.Fatal("inst-2's config still holds inst-1's secret after its rotation")
	}
	if revoke = g.enq.get(tasks.RevokeTaskID("inst-2", owner)); revoke == nil {
		t.Fatal("no revoke task for inst-2's superseded credential")
	}
	return owner, value, revoke
}
