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

// mintFront forwards every request to the demo issuer, and rewrites the
// config of each 2xx mint answer with edit.
func mintFront(edit func(answer map[string]any)) func(demo http.Handler) http.Handler {
	return func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/credentials" {
				demo.ServeHTTP(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			rec := httptest.NewRecorder()
			demo.ServeHTTP(rec, r)
			var answer map[string]any
			if rec.Code/100 != 2 || json.Unmarshal(rec.Body.Bytes(), &answer) != nil {
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			edit(answer)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_ = json.NewEncoder(w).Encode(answer)
		})
	}
}

// The first rotation of an instance (its current credential the one
// registered at provisioning, whose config rekey never minted) is
// answered by an issuer that mints a new id but hands back the config the
// app already holds (an issuer keyed by instance, a cache). Pushed, it
// would change nothing, the new id would be promoted, and after the grace
// the provisioning credential, whose values the app still runs on, would
// be revoked (I1). rekey holds the provisioning config's fingerprint,
// from the registration's current_config or, without it, from the config
// Heroku holds, read before the first mint: the mint is refused
// (config_reused).
func TestFirstRotationMintedWithTheProvisioningConfigUnderANewID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		provision func(t *testing.T, g *rig, id string)
	}{
		{"registered with current_config", func(t *testing.T, g *rig, id string) { g.provision(t, id, g.reg) }},
		{"registered without current_config", provisionWithoutConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			ctx := context.Background()
			const id = "inst-2"
			tc.provision(t, g, id)
			live := g.fake.Config(id)[issuer.DefaultConfigVar]
			g.overHandler(t, issuer.VerifyAuto, mintFront(func(answer map[string]any) {
				answer["config"] = map[string]string{issuer.DefaultConfigVar: live}
			}))
			before, _ := g.st.Instance(ctx, id)

			err := g.run(rotateTask(t, id, "rot_first"))
			in, _ := g.st.Instance(ctx, id)
			t.Logf("rotate: err=%v current=%s (was %s) last error code %q", err, in.CurrentCredential, before.CurrentCredential, in.LastErrorCode)

			if revoke := g.enq.get(tasks.RevokeTaskID(id, before.CurrentCredential)); revoke != nil {
				g.later.Store(int64(grace + time.Second))
				_ = g.run(revoke)
			}
			if got := g.fake.Config(id)[issuer.DefaultConfigVar]; got == live && !g.demo.Valid(before.CurrentCredential) {
				t.Fatalf("the app's config still holds the provisioning credential %s's value, and rekey had it revoked (I1); "+
					"the rotation ended with current %s, last error code %q", before.CurrentCredential, in.CurrentCredential, in.LastErrorCode)
			}
			if in.CurrentCredential != before.CurrentCredential || in.LastErrorCode != "mint:config_reused" {
				t.Errorf("current %s (was %s), last error code %q; want the provisioning credential current and mint:config_reused",
					in.CurrentCredential, before.CurrentCredential, in.LastErrorCode)
			}
		})
	}
}

// An instance registered without current_config costs one Heroku config
// read more on its first rotation, before its mint, and none on any later
// one; one registered with it (as `rekey dev` and the benchmarks register)
// costs none.
func TestFirstRotationReadsTheConfigOnceWithoutCurrentConfig(t *testing.T) {
	t.Parallel()
	g := newRig(t) // inst-1 registered with current_config
	provisionWithoutConfig(t, g, "inst-2")
	for _, tc := range []struct {
		id, rot string
		reads   int
	}{
		{"inst-1", "rot-1a", 0},
		{"inst-1", "rot-1b", 0},
		{"inst-2", "rot-2a", 1},
		{"inst-2", "rot-2b", 0},
	} {
		before := configReads(g, tc.id)
		if err := g.run(rotateTask(t, tc.id, tc.rot)); err != nil {
			t.Fatalf("%s: %v", tc.rot, err)
		}
		if n := configReads(g, tc.id) - before; n != tc.reads {
			t.Errorf("%s of %s: %d config reads, want %d", tc.rot, tc.id, n, tc.reads)
		}
		if n := len(g.fake.Calls(herokufake.PatchConfig)); n == 0 {
			t.Fatalf("%s: no push", tc.rot)
		}
	}
}

// A read of the config before the first mint that fails is the run's
// failure, before anything is minted: retried when transient, the
// rotation ended when Heroku answers 404 for the add-on, as after a push.
func TestFirstRotationConfigReadFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		status    int
		permanent bool
		code      string
	}{
		{"transient", http.StatusServiceUnavailable, false, ""},
		{"gone", http.StatusNotFound, true, "readback:not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			ctx := context.Background()
			provisionWithoutConfig(t, g, "inst-2")
			g.fake.Script(herokufake.GetConfig, herokufake.Respond(tc.status))
			minted := g.demo.Stats().MintCalls
			err := g.run(rotateTask(t, "inst-2", "rot-2"))
			if err == nil || isPermanent(err) != tc.permanent {
				t.Fatalf("rotate = %v, want permanent %v", err, tc.permanent)
			}
			if n := g.demo.Stats().MintCalls - minted; n != 0 {
				t.Errorf("%d mint calls, want none", n)
			}
			if in, _ := g.st.Instance(ctx, "inst-2"); in.LastErrorCode != tc.code {
				t.Errorf("last error code %q, want %q", in.LastErrorCode, tc.code)
			}
		})
	}
}

// configReads counts the config reads Heroku answered for add-on id.
func configReads(g *rig, id string) int {
	n := 0
	for _, c := range g.fake.Calls(herokufake.GetConfig) {
		if c.Addon == id {
			n++
		}
	}
	return n
}

// provisionWithoutConfig provisions add-on id as provision does, and
// registers it without current_config, as partners did before it.
func provisionWithoutConfig(t *testing.T, g *rig, id string) {
	t.Helper()
	provisionWithVars(t, g, id, []string{issuer.DefaultConfigVar})
}

// An add-on whose config holds none of the vars its instance was
// registered with (config_vars naming other vars, or a front answering for
// Heroku with an empty config) is not rotated: the push would add vars the
// apps do not read, and the credential they run on would be revoked after
// the grace (I1). Nothing is minted, and the next rotation reads again.
func TestFirstRotationStopsWhenHerokuHoldsNoneOfTheVars(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	cred, err := g.demo.Mint(ctx, "inst-2", "provision")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{issuer.DefaultConfigVar}
	if err := g.fake.AddAddon(herokufake.AddonSpec{ID: "inst-2", App: "app-inst-2", ConfigVars: []string{"OTHERADDON_URL"},
		InitialConfig: map[string]string{"OTHERADDON_URL": cred.Config[issuer.DefaultConfigVar].Reveal()}}); err != nil {
		t.Fatal(err)
	}
	if err := g.reg.Put(ctx, registry.Input{ID: "inst-2", APIVersion: store.APIv3, ConfigVars: names,
		CurrentCredentialID: cred.ID, OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode("inst-2"))}}); err != nil {
		t.Fatal(err)
	}
	minted := g.demo.Stats().MintCalls
	for i, rot := range []string{"rot-2", "rot-3"} {
		err := g.run(rotateTask(t, "inst-2", rot))
		if err == nil || !isPermanent(err) {
			t.Fatalf("rotate %s = %v, want a permanent failure", rot, err)
		}
		if n := configReads(g, "inst-2"); n != i+1 {
			t.Errorf("after %s: %d config reads, want %d: a read that found none of the vars notes nothing", rot, n, i+1)
		}
	}
	if n := g.demo.Stats().MintCalls - minted; n != 0 {
		t.Errorf("%d mint calls, want none", n)
	}
	in, _ := g.st.Instance(ctx, "inst-2")
	if in.LastErrorCode != "readback:config_vars_not_held" || in.CurrentCredential != cred.ID {
		t.Errorf("last error code %q, current %s; want readback:config_vars_not_held, %s", in.LastErrorCode, in.CurrentCredential, cred.ID)
	}
	if !g.demo.Valid(cred.ID) {
		t.Errorf("the credential the app runs on, %s, was revoked (I1)", cred.ID)
	}
}
