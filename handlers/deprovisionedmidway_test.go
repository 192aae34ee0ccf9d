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
// request push matches at once but holds its answer until release is
// called (or the test ends), as a slow answer on its way back (the call
// waits up to 30 s) does; applied is closed once the push took effect.
func (g *rig) answerLate(t *testing.T, push func(*http.Request) bool) (applied chan struct{}, release func()) {
	t.Helper()
	applied, answer := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(answer) }) }
	first := true
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !push(r) || !first {
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
			applied, release := g.answerLate(t, isPatch)
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

// deletedBeforePush deprovisions the instance, as the partner's DELETE
// would, just before the run records its push attempt: the push starts
// after the DELETE, which found no push to mark.
type deletedBeforePush struct{ *store.Store }

func (s *deletedBeforePush) MarkPushAttempt(ctx context.Context, rotationID string) error {
	if err := s.Deprovision(ctx, "inst-v1"); err != nil {
		return err
	}
	return s.Store.MarkPushAttempt(ctx, rotationID)
}

// isV1Put matches a V1 config push.
func isV1Put(r *http.Request) bool { return r.Method == http.MethodPut }

// A V1 push that starts after the partner's DELETE and is answered after
// a registration again (Heroku provisioned the add-on anew, with
// credential Z in its config) is promoted only when the config read back
// holds it. Landed before Z, it is not: Z stays current and valid, as the
// apps run on it. Landed after Z, it is promoted and Z revoked after the
// grace: the config, and the apps once restarted, hold the pushed
// credential, which stays valid (I1).
func TestAV1PushStartedAfterTheDeleteIsPromotedOnlyAsReadBack(t *testing.T) {
	for _, after := range []bool{false, true} {
		name := map[bool]string{false: "landed before the new add-on's config", true: "landed after it"}[after]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			ctx := context.Background()
			direct := g.deps.Heroku
			old := g.provisionV1(t, "inst-v1", "app9@heroku.com")
			g.deps.Store = &deletedBeforePush{Store: g.st}
			var reached <-chan struct{}
			var release func()
			if after {
				arrived, hold := g.holdFirst(t, isV1Put)
				reached, release = arrived, func() { close(hold) }
			} else {
				reached, release = g.answerLate(t, isV1Put)
			}
			done := make(chan error, 1)
			go func() { done <- g.run(rotateTask(t, "inst-v1", "rot-late")) }()
			select {
			case <-reached:
			case <-time.After(10 * time.Second):
				t.Fatal("the rotation's push never reached Heroku")
			}
			z, err := g.demo.Mint(ctx, "inst-v1", "provision-again")
			if err != nil {
				t.Fatal(err)
			}
			target := heroku.Target{AddonID: "inst-v1", APIVersion: heroku.APIVersionV1, HerokuID: "app9@heroku.com"}
			if err := direct.UpdateConfig(ctx, target,
				[]heroku.ConfigVar{{Name: issuer.DefaultConfigVar, Value: z.Config[issuer.DefaultConfigVar]}}); err != nil {
				t.Fatal(err)
			}
			if err := g.reg.Put(ctx, registry.Input{ID: "inst-v1", APIVersion: store.APIv1, HerokuID: "app9@heroku.com",
				ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: z.ID,
				CurrentConfig: map[string]secret.String{issuer.DefaultConfigVar: z.Config[issuer.DefaultConfigVar]}}); err != nil {
				t.Fatal(err)
			}
			release()
			runErr := <-done

			held := g.configCredential(t, "inst-v1")
			r, _ := g.st.Rotation(ctx, "rot-late")
			g.later.Store(int64(2 * grace))
			for _, id := range []string{z.ID, r.CredentialID, old} {
				if task := g.enq.get(tasks.RevokeTaskID("inst-v1", id)); task != nil {
					_ = g.run(task)
				}
			}
			in, _ := g.st.Instance(ctx, "inst-v1")
			if in.CurrentCredential != held || !g.demo.Valid(held) {
				t.Errorf("current credential %s, the config holds %s (valid %v); want the one the config holds, valid",
					in.CurrentCredential, held, g.demo.Valid(held))
			}
			want := map[bool]string{false: z.ID, true: r.CredentialID}[after]
			if held != want {
				t.Errorf("config holds %s, want %s", held, want)
			}
			if promoted := r.State == store.RotationPromoted; promoted != after {
				t.Errorf("rotation is %s (run: %v); want it promoted only when the push landed after Z", r.State, runErr)
			}
		})
	}
}
