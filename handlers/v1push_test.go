package handlers_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// provisionV1 creates a V1 add-on on the fake with a credential minted at
// provisioning, registers it with its config (as provision does), and
// returns that credential's id.
func (g *rig) provisionV1(t *testing.T, id, herokuID string) string {
	t.Helper()
	ctx := context.Background()
	cred, err := g.demo.Mint(ctx, id, "provision")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, HerokuID: herokuID,
		ConfigVars:    []string{issuer.DefaultConfigVar},
		InitialConfig: map[string]string{issuer.DefaultConfigVar: cred.Config[issuer.DefaultConfigVar].Reveal()}}); err != nil {
		t.Fatal(err)
	}
	if err := g.reg.Put(ctx, registry.Input{ID: id, APIVersion: store.APIv1, HerokuID: herokuID,
		ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: cred.ID,
		CurrentConfig: map[string]secret.String{issuer.DefaultConfigVar: cred.Config[issuer.DefaultConfigVar]}}); err != nil {
		t.Fatal(err)
	}
	return cred.ID
}

// A V1 push is promoted once the config read back holds it: two calls, the
// PUT and its read-back.
func TestV1PushIsPromotedOnceReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.useHeroku(t, g.fake, 5*time.Second)
	g.provisionV1(t, "inst-v1", "app9@heroku.com")
	if err := g.run(rotateTask(t, "inst-v1", "rot-v1")); err != nil {
		t.Fatal(err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-v1")
	if held := g.configCredential(t, "inst-v1"); rot.State != store.RotationPromoted || held != rot.CredentialID {
		t.Errorf("rotation %s, Heroku holds %s; want promoted, holding %s", rot.State, held, rot.CredentialID)
	}
	puts, gets := len(g.fake.Calls(herokufake.V1Put)), len(g.fake.Calls(herokufake.V1Get))
	if puts != 1 || gets != 1 {
		t.Errorf("%d PUTs and %d GETs; want one of each", puts, gets)
	}
}

// A V1 PUT answered 200 "{}", 202 or 204 that changed nothing is no proof
// the push landed: its credential is not promoted, so the one the app still
// runs on is never revoked (I1).
func TestV1AnswerThatChangedNothingIsNotPromoted(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/vendor/apps/") {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					if status != http.StatusNoContent {
						_, _ = w.Write([]byte(`{}`))
					}
					return
				}
				g.fake.ServeHTTP(w, r)
			}), 5*time.Second)
			old := g.provisionV1(t, "inst-v1", "app9@heroku.com")
			if err := g.run(rotateTask(t, "inst-v1", "rot-v1")); !isPermanent(err) {
				t.Fatalf("err = %v, want permanent", err)
			}
			g.later.Store(int64(2 * grace))
			if task := g.enq.get(tasks.RevokeTaskID("inst-v1", old)); task != nil {
				t.Logf("revoke of the old credential: %v", g.run(task))
			}
			rot, _ := g.st.Rotation(ctx, "rot-v1")
			if held := g.configCredential(t, "inst-v1"); held != old || !g.demo.Valid(old) || rot.State == store.RotationPromoted {
				t.Errorf("I1: rotation %s; Heroku holds %s (valid %v), the old credential %s; want it valid, the rotation not promoted",
					rot.State, held, g.demo.Valid(held), old)
			}
		})
	}
}
