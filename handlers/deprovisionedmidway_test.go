package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// answerLate puts a front before the fake Heroku that applies the first
// config push at once but holds its answer until release is called (or
// the test ends), as a slow answer on its way back (the call waits up to
// 30 s) does; applied is closed once the push took effect.
func (g *rig) answerLate(t *testing.T) (applied chan struct{}, release func()) {
	t.Helper()
	applied, answer := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(answer) }) }
	first := true
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch || !first {
			g.fake.ServeHTTP(w, r)
			return
		}
		first = false
		rec := httptest.NewRecorder()
		g.fake.ServeHTTP(rec, r)
		close(applied)
		<-answer
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(front.Close)
	t.Cleanup(release) // before the front closes, which waits for its handlers
	g.callThrough(t, front)
	return applied, release
}

// A push whose answer comes back after the partner's DELETE and a
// registration again (Heroku provisioned the add-on anew, with credential
// Z in its config) is never promoted: the instance keeps Z current, and
// the pushed credential, which may have landed on the new add-on after Z,
// is kept unconfirmed; promoted, it would have made Z previous and revoked
// it under the apps (I1). Left deprovisioned (a DELETE by mistake leaves
// the add-on and the config the push changed), the rotation is promoted as
// before: the credential the config holds stays valid.
func TestAPushAnsweredAfterTheDeprovisioningIsNotPromoted(t *testing.T) {
	for _, again := range []bool{true, false} {
		name := map[bool]string{true: "registered again", false: "left deprovisioned"}[again]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			ctx := context.Background()
			before, _ := g.st.Instance(ctx, "inst-1")
			direct := g.deps.Heroku
			applied, release := g.answerLate(t)
			done := make(chan error, 1)
			go func() { done <- g.run(rotateTask(t, "inst-1", "rot-late")) }()
			select {
			case <-applied:
			case <-time.After(10 * time.Second):
				t.Fatal("the rotation's push never reached Heroku")
			}
			pushed := g.configCredential(t, "inst-1")
			current := pushed // left deprovisioned, the promotion makes it current
			var z issuer.Credential
			if again {
				// Heroku provisions the add-on anew with the partner's new
				// credential Z (the fake keeps one add-on: its config
				// becomes Z's).
				var err error
				if z, err = g.demo.Mint(ctx, "inst-1", "provision-again"); err != nil {
					t.Fatal(err)
				}
				err = direct.UpdateConfig(ctx, heroku.Target{AddonID: "inst-1", APIVersion: heroku.APIVersionV3},
					[]heroku.ConfigVar{{Name: issuer.DefaultConfigVar, Value: z.Config[issuer.DefaultConfigVar]}})
				if err != nil {
					t.Fatal(err)
				}
				current = z.ID
			}
			if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
				t.Fatal(err)
			}
			if again {
				err := g.reg.Put(ctx, registry.Input{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar},
					CurrentCredentialID: z.ID, CurrentConfig: map[string]secret.String{issuer.DefaultConfigVar: z.Config[issuer.DefaultConfigVar]},
					OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode("inst-1"))}})
				if err != nil {
					t.Fatal(err)
				}
			}
			release()
			err := <-done
			if again != isPermanent(err) {
				t.Fatalf("rotation = %v, want it failed for good only when registered again", err)
			}

			in, _ := g.st.Instance(ctx, "inst-1")
			if in.CurrentCredential != current {
				t.Errorf("current credential %s, want %s", in.CurrentCredential, current)
			}
			r, _ := g.st.Rotation(ctx, "rot-late")
			p, _ := g.st.Credential(ctx, "inst-1", pushed)
			g.later.Store(int64(2 * grace))
			for _, id := range []string{current, pushed, before.CurrentCredential} {
				if task := g.enq.get(tasks.RevokeTaskID("inst-1", id)); task != nil {
					_ = g.run(task)
				}
			}
			if !g.demo.Valid(current) || !g.demo.Valid(g.configCredential(t, "inst-1")) {
				t.Errorf("credential %s, current, or the one the add-on's config holds, was revoked", current)
			}
			switch {
			case again && r.State != store.RotationFailed:
				t.Errorf("rotation is %s, want failed", r.State)
			case again && (p.State != store.CredentialUnconfirmed || !g.demo.Valid(pushed)):
				t.Errorf("pushed credential is %s (valid %v), want unconfirmed and valid: the new add-on may hold it",
					p.State, g.demo.Valid(pushed))
			case !again && r.State != store.RotationPromoted:
				t.Errorf("rotation is %s, want promoted", r.State)
			}
		})
	}
}

// A rotation that had pushed nothing when the partner's DELETE came, and
// runs once the instance is registered again, pushes to the new add-on
// and is promoted: its whole push belongs to the new registration, and
// Heroku's config holds what it pushed.
func TestARotationThatPushedNothingBeforeTheDeleteRunsOnTheNewRegistration(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-req",
		Reason: store.ReasonScheduled, Queue: "bulk"}); err != nil {
		t.Fatal(err)
	}
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	z, err := g.demo.Mint(ctx, "inst-1", "provision-again")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.reg.Put(ctx, registry.Input{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar},
		CurrentCredentialID: z.ID, CurrentConfig: map[string]secret.String{issuer.DefaultConfigVar: z.Config[issuer.DefaultConfigVar]},
		OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode("inst-1"))}}); err != nil {
		t.Fatal(err)
	}
	if err := g.run(rotateTask(t, "inst-1", "rot-req")); err != nil {
		t.Fatalf("rotation = %v", err)
	}
	r, _ := g.st.Rotation(ctx, "rot-req")
	in, _ := g.st.Instance(ctx, "inst-1")
	if r.State != store.RotationPromoted || in.CurrentCredential != g.configCredential(t, "inst-1") || in.FailStreak != 0 {
		t.Errorf("rotation %s, current %s, config holds %s, fail streak %d; want it promoted to what the config holds",
			r.State, in.CurrentCredential, g.configCredential(t, "inst-1"), in.FailStreak)
	}
}
