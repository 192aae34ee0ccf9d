package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A credential of two config vars whose push Heroku applied in part (the
// first var set, then 422 for the second): the config read back holds
// MYADDON_URL of the new credential, so it proves nothing "not held". The
// credential is kept unconfirmed and valid, never revoked while the app's
// MYADDON_URL is its (I1).
func TestPushAppliedInPartKeepsItsCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names := []string{"MYADDON_TOKEN", "MYADDON_URL"}
	g := newRig(t, issuer.WithConfigVars(func(string) []string { return names }))
	cred, err := g.demo.Mint(ctx, "inst-2", "provision")
	if err != nil {
		t.Fatal(err)
	}
	initial := map[string]string{}
	for _, n := range names {
		initial[n] = cred.Config[n].Reveal()
	}
	if err := g.fake.AddAddon(herokufake.AddonSpec{ID: "inst-2", App: "app-inst-2", ConfigVars: names, InitialConfig: initial}); err != nil {
		t.Fatal(err)
	}
	if err := g.reg.Put(ctx, registry.Input{ID: "inst-2", APIVersion: store.APIv3, ConfigVars: names,
		CurrentCredentialID: cred.ID, OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode("inst-2"))}}); err != nil {
		t.Fatal(err)
	}
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch {
			g.fake.ServeHTTP(w, r)
			return
		}
		var body struct {
			Config []map[string]string `json:"config"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		body.Config = body.Config[len(body.Config)-1:] // MYADDON_URL only: the vars go sorted by name
		part, _ := json.Marshal(body)
		applied := r.Clone(context.Background())
		applied.Body, applied.ContentLength = io.NopCloser(bytes.NewReader(part)), int64(len(part))
		g.fake.ServeHTTP(httptest.NewRecorder(), applied)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"id":"invalid_params","message":"MYADDON_TOKEN is invalid"}`))
	}), 5*time.Second)
	if err := g.run(rotateTask(t, "inst-2", "rot-2")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-2")
	c, _ := g.st.Credential(ctx, "inst-2", rot.CredentialID)
	if task := g.enq.get(tasks.RevokeTaskID("inst-2", c.ID)); task != nil {
		t.Logf("revoke: %v", g.run(task))
	}
	held, _ := g.demo.Lookup(g.fake.Config("inst-2")["MYADDON_URL"])
	if held != c.ID {
		t.Fatalf("Heroku's MYADDON_URL is %s's, want the new credential %s's: the push was not applied in part", held, c.ID)
	}
	if c.State != store.CredentialUnconfirmed || !g.demo.Valid(c.ID) {
		t.Errorf("I1: Heroku's MYADDON_URL holds %s, which is %s (valid %v); want unconfirmed and valid", c.ID, c.State, g.demo.Valid(c.ID))
	}
}
