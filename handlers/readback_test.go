package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/retry"
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
	provisionWithVars(t, g, "inst-2", names)
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

// A push applied and answered 503 (unanswered), then the push sent again,
// its read-back and the add-on all answered "gone", the add-on's state
// "deprovisioned" (a wrong answer: the add-on lives on, its config holds
// the new credential). That one answer cannot outweigh a push still
// unanswered: the credential is kept unconfirmed, not revoked (I1).
func TestDeprovisionedStateDoesNotOverrideAnUnansweredPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	var patches atomic.Int32
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPatch && patches.Add(1) == 1:
			g.fake.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.Method == http.MethodPatch, r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/config"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"id":"not_found","message":"Couldn't find that add-on."}`))
		case r.Method == http.MethodGet && r.URL.Path == "/addons/inst-1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id":"inst-1","state":"deprovisioned"}`))
		default:
			g.fake.ServeHTTP(w, r)
		}
	}), 5*time.Second)
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); !isPermanent(err) {
		t.Fatalf("run (applied, 503, then 404s, deprovisioned): %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	g.later.Store(int64(2 * grace))
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)); task != nil {
		t.Logf("revoke: %v", g.run(task))
	}
	if held := g.configCredential(t, "inst-1"); held != c.ID {
		t.Fatalf("Heroku holds %s, want the new credential %s: the first push did not land", held, c.ID)
	}
	c, _ = g.st.Credential(ctx, "inst-1", c.ID)
	if c.State != store.CredentialUnconfirmed || !g.demo.Valid(c.ID) {
		t.Fatalf("I1: Heroku's config holds %s, which is %s (valid %v); want unconfirmed and valid", c.ID, c.State, g.demo.Valid(c.ID))
	}
	// Were the add-on really gone, the partner's DELETE would follow: the
	// credential is then revoked after the grace (I3).
	before := time.Now()
	if err := g.st.DeprovisionWithGrace(ctx, "inst-1", store.DeprovisionGrace{Default: grace}); err != nil {
		t.Fatal(err)
	}
	c, _ = g.st.Credential(ctx, "inst-1", c.ID)
	if c.State != store.CredentialDiscarded || c.RevokeAt.Before(before.Add(grace).Truncate(time.Second)) {
		t.Errorf("after the partner's DELETE: %s, revoked at %s; want discarded, due after the grace", c.State, c.RevokeAt)
	}
}

// The same "deprovisioned" answer once every push was answered (refused)
// is proof that Heroku holds none of the credential: it is discarded and
// revoked at once, as before.
func TestDeprovisionedStateAfterRefusedPushesDiscards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPatch, r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/config"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"id":"not_found","message":"Couldn't find that add-on."}`))
		case r.Method == http.MethodGet && r.URL.Path == "/addons/inst-1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id":"inst-1","state":"deprovisioned"}`))
		default:
			g.fake.ServeHTTP(w, r)
		}
	}), 5*time.Second)
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	if c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID); c.State != store.CredentialDiscarded {
		t.Errorf("credential %s; want discarded: every push was refused and the add-on is deprovisioned", c.State)
	}
}

// A push answered 2xx without its config (so the config is read back), and
// the read-back answered 429: waiting for the budget is no failure, here
// as for the push itself, so the run asks to be retried later rather than
// use up one of the task's retries.
func TestReadBackRateLimitedIsNoFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.fake.Always(herokufake.GetConfig, herokufake.Respond(http.StatusTooManyRequests))
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true}`))
			return
		}
		g.fake.ServeHTTP(w, r)
	}), 5*time.Second)
	err := g.run(rotateTask(t, "inst-1", "rot-1"))
	if !retry.IsLater(err) || retry.IsFailure(err) {
		t.Fatalf("run: %v (failure %v); want a retry later that is no failure", err, retry.IsFailure(err))
	}
	if rot, _ := g.st.Rotation(ctx, "rot-1"); rot.State != store.RotationMinted {
		t.Errorf("rotation %s; want it still minted, to run again", rot.State)
	}
}

// A credential whose MYADDON_HOST is the same in every credential (as a
// database's host is), and whose push Heroku refuses whole: the config read
// back holds the new credential's host, which proves nothing, but it is
// the current credential's config var for var (its fingerprint), so
// Heroku holds no part of the new one. It is discarded and revoked, not
// kept valid until a later rotation (I3); the current credential stays.
func TestRefusedPushOfACredentialSharingAValueIsDiscarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names := []string{"MYADDON_HOST", "MYADDON_URL"}
	g := newRig(t, issuer.WithConfigVars(func(string) []string { return names }),
		issuer.WithSharedValue("MYADDON_HOST", "db.myaddon.example"))
	provisionWithVars(t, g, "inst-2", names)
	var refuse atomic.Bool
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch || !refuse.Load() {
			g.fake.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"id":"invalid_params","message":"config refused"}`))
	}), 5*time.Second)
	// The first rotation lands: its credential, minted by rekey, is current.
	if err := g.run(rotateTask(t, "inst-2", "rot-1")); err != nil {
		t.Fatal(err)
	}
	in, _ := g.st.Instance(ctx, "inst-2")
	current := in.CurrentCredential
	refuse.Store(true)
	if err := g.run(rotateTask(t, "inst-2", "rot-2")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-2")
	c, _ := g.st.Credential(ctx, "inst-2", rot.CredentialID)
	if task := g.enq.get(tasks.RevokeTaskID("inst-2", c.ID)); task != nil {
		if err := g.run(task); err != nil {
			t.Fatalf("revoke: %v", err)
		}
	}
	c, _ = g.st.Credential(ctx, "inst-2", rot.CredentialID)
	if held, _ := g.demo.Lookup(g.fake.Config("inst-2")["MYADDON_URL"]); held != current {
		t.Fatalf("Heroku's MYADDON_URL is %s's, want the current %s's", held, current)
	}
	if c.State == store.CredentialUnconfirmed || g.demo.Valid(c.ID) {
		t.Errorf("credential %s Heroku never held is %s (valid %v); want discarded and revoked", c.ID, c.State, g.demo.Valid(c.ID))
	}
	if !g.demo.Valid(current) {
		t.Errorf("the current credential %s was revoked", current)
	}
}

// provisionWithVars provisions instance id on the fake Heroku with a
// credential of the config vars names, minted by the demo issuer, and
// registers it.
func provisionWithVars(t *testing.T, g *rig, id string, names []string) {
	t.Helper()
	ctx := context.Background()
	cred, err := g.demo.Mint(ctx, id, "provision")
	if err != nil {
		t.Fatal(err)
	}
	initial := map[string]string{}
	for _, n := range names {
		initial[n] = cred.Config[n].Reveal()
	}
	if err := g.fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, ConfigVars: names, InitialConfig: initial}); err != nil {
		t.Fatal(err)
	}
	if err := g.reg.Put(ctx, registry.Input{ID: id, APIVersion: store.APIv3, ConfigVars: names,
		CurrentCredentialID: cred.ID, OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode(id))}}); err != nil {
		t.Fatal(err)
	}
}

// A config read back that names a var twice, the pushed value first and
// another after it, is no proof either way: which of the two the apps run
// on cannot be told (encoding/json keeps the last). Heroku applies a push
// and answers it 422, as a push applied in part is answered, then answers
// the read-back so: the credential is kept unconfirmed and valid, not
// discarded and revoked on the second value's word (I1).
func TestAReadBackNamingAVarTwiceProvesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		g.fake.ServeHTTP(rec, r)
		switch {
		case r.Method == http.MethodPatch:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"id":"invalid_params","message":"MYADDON_URL is invalid"}`))
		case r.URL.Path == "/addons/inst-1/config" && rec.Code == http.StatusOK:
			var vars []map[string]string
			_ = json.Unmarshal(rec.Body.Bytes(), &vars)
			vars = append(vars, map[string]string{"name": issuer.DefaultConfigVar, "value": "postgres://u:stale@db/x"})
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(vars)
		default:
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		}
	}), 5*time.Second)
	t.Logf("run: %v", g.run(rotateTask(t, "inst-1", "rot-1")))
	rot, _ := g.st.Rotation(ctx, "rot-1")
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)); task != nil {
		t.Logf("revoke: %v", g.run(task))
	}
	if held := g.configCredential(t, "inst-1"); held != c.ID || !g.demo.Valid(held) {
		t.Errorf("Heroku's config holds %s, the rotation's credential is %s (%s, valid %v); want it held and valid",
			held, c.ID, c.State, g.demo.Valid(c.ID))
	}
}
