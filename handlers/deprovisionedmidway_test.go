package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
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

// beforePush runs do once, just before the run records its first push
// attempt: after the run's claim (and, for V3, after its token was loaded
// while it waits for the budget), before the push leaves.
type beforePush struct {
	*store.Store
	once sync.Once
	do   func()
}

func (s *beforePush) MarkPushAttempt(ctx context.Context, rotationID string, to store.PushTarget) error {
	s.once.Do(s.do)
	return s.Store.MarkPushAttempt(ctx, rotationID, to)
}

// pushes counts the config pushes that reached the fake Heroku.
func (g *rig) pushes() int {
	return len(g.fake.Calls(herokufake.PatchConfig)) + len(g.fake.Calls(herokufake.V1Put))
}

// A push whose instance the partner's DELETE deprovisioned after the run's
// claim is never sent: the add-on it would go to is gone, and a
// registration again (Heroku provisioning the add-on anew with credential
// Z) would otherwise have it land on the new add-on and be promoted over
// Z, which the apps run on (I1). The rotation fails (push:deprovisioned),
// its credential, never pushed, is revoked, and Z stays current and valid.
func TestAPushAfterTheDeleteIsNotSent(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v3", true: "v1"}[v1], func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			ctx := context.Background()
			direct := g.deps.Heroku
			id, in := "inst-1", registry.Input{ID: "inst-1", APIVersion: store.APIv3}
			target := heroku.Target{AddonID: id, APIVersion: heroku.APIVersionV3}
			if v1 {
				id = "inst-v1"
				g.provisionV1(t, id, "app9@heroku.com")
				in = registry.Input{ID: id, APIVersion: store.APIv1, HerokuID: "app9@heroku.com"}
				target = heroku.Target{AddonID: id, APIVersion: heroku.APIVersionV1, HerokuID: "app9@heroku.com"}
			}
			g.deps.Store = &beforePush{Store: g.st, do: func() {
				if err := g.st.Deprovision(ctx, id); err != nil {
					t.Error(err)
				}
			}}
			err := g.run(rotateTask(t, id, "rot-late"))
			if !isPermanent(err) {
				t.Fatalf("rotation = %v, want it failed for good", err)
			}
			r, _ := g.st.Rotation(ctx, "rot-late")
			if n := g.pushes(); n != 0 || r.State != store.RotationFailed || !strings.Contains(r.Error, "deprovisioned") {
				t.Errorf("%d pushes reached Heroku; rotation %s (%s); want none, failed as deprovisioned", n, r.State, r.Error)
			}
			// Heroku provisions the add-on anew with Z, which the partner
			// registers (the fake keeps the add-on: its config becomes Z's).
			z, err := g.demo.Mint(ctx, id, "provision-again")
			if err != nil {
				t.Fatal(err)
			}
			in.ConfigVars, in.CurrentCredentialID = []string{issuer.DefaultConfigVar}, z.ID
			in.CurrentConfig = map[string]secret.String{issuer.DefaultConfigVar: z.Config[issuer.DefaultConfigVar]}
			if !v1 {
				in.OAuthGrant = &registry.Grant{Code: secret.New(g.fake.GrantCode(id))}
			}
			if err := g.reg.Put(ctx, in); err != nil {
				t.Fatal(err)
			}
			if err := direct.UpdateConfig(ctx, target,
				[]heroku.ConfigVar{{Name: issuer.DefaultConfigVar, Value: z.Config[issuer.DefaultConfigVar]}}); err != nil {
				t.Fatal(err)
			}
			g.later.Store(int64(2 * grace))
			if task := g.enq.get(tasks.RevokeTaskID(id, r.CredentialID)); task != nil {
				_ = g.run(task)
			}
			now, _ := g.st.Instance(ctx, id)
			if now.CurrentCredential != z.ID || !g.demo.Valid(z.ID) || g.configCredential(t, id) != z.ID {
				t.Errorf("current %s, config holds %s, Z %s valid %v; want Z current, held and valid",
					now.CurrentCredential, g.configCredential(t, id), z.ID, g.demo.Valid(z.ID))
			}
			if g.demo.Valid(r.CredentialID) {
				t.Errorf("the rotation's credential %s, never pushed, is still valid", r.CredentialID)
			}
		})
	}
}

// Heroku's V1 calls name the app alone. A V1 push whose instance A the
// partner deprovisioned after the run's claim would land in the next
// install of an add-on on that app: instance B, which registers under the
// same heroku_id once A's DELETE freed it. B's apps would run on A's
// secret, B's own credential gone from their config. The push is never
// sent: B's config keeps B's credential.
func TestAV1PushAfterTheDeleteNeverReachesTheAppsNextInstall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	const app, alias = "app5@heroku.com", "app5-b@heroku.com"
	// The fake keeps heroku_ids apart: B's add-on is kept under an alias,
	// which the app's V1 id reaches once A is gone, as on Heroku.
	var moved atomic.Bool
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if moved.Load() && strings.HasPrefix(r.URL.Path, "/vendor/apps/") {
			r.URL.Path, r.URL.RawPath = "/vendor/apps/"+alias, "/vendor/apps/"+url.PathEscape(alias)
			r.RequestURI = r.URL.RequestURI()
			r.SetPathValue("heroku_id", alias)
		}
		g.fake.ServeHTTP(w, r)
	}), 5*time.Second)
	g.provisionV1(t, "inst-a", app)
	var b issuer.Credential
	g.deps.Store = &beforePush{Store: g.st, do: func() {
		if err := g.st.Deprovision(ctx, "inst-a"); err != nil {
			t.Error(err)
		}
		g.fake.Deprovision("inst-a")
		var err error
		if b, err = g.demo.Mint(ctx, "inst-b", "provision"); err != nil {
			t.Error(err)
			return
		}
		if err := g.fake.AddAddon(herokufake.AddonSpec{ID: "inst-b", App: "app-inst-a", HerokuID: alias,
			ConfigVars:    []string{issuer.DefaultConfigVar},
			InitialConfig: map[string]string{issuer.DefaultConfigVar: b.Config[issuer.DefaultConfigVar].Reveal()}}); err != nil {
			t.Error(err)
		}
		moved.Store(true)
		if err := g.reg.Put(ctx, registry.Input{ID: "inst-b", APIVersion: store.APIv1, HerokuID: app,
			ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: b.ID,
			CurrentConfig: map[string]secret.String{issuer.DefaultConfigVar: b.Config[issuer.DefaultConfigVar]}}); err != nil {
			t.Errorf("registering B: %v", err)
		}
	}}
	err := g.run(rotateTask(t, "inst-a", "rot-a"))
	r, _ := g.st.Rotation(ctx, "rot-a")
	held, _ := g.demo.Lookup(g.fake.Config("inst-b")[issuer.DefaultConfigVar])
	if held != b.ID || g.pushes() != 0 {
		t.Errorf("A's rotation: %v, %s; B's config holds %s (A's rotation minted %s), want B's own %s; %d pushes sent, want none",
			err, r.State, held, r.CredentialID, b.ID, g.pushes())
	}
}

// A V1 push whose instance was registered again under another heroku_id
// (a partner correcting the app) after the run's claim is not sent to the
// app the claim named, which may be another customer's by now: the
// rotation fails (push:registration_changed) and the next one pushes to
// the app the registration names.
func TestAPushAfterARegistrationNamingAnotherAppIsNotSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	old := g.provisionV1(t, "inst-v1", "app9@heroku.com")
	cfg := map[string]secret.String{issuer.DefaultConfigVar: secret.New(g.fake.Config("inst-v1")[issuer.DefaultConfigVar])}
	g.deps.Store = &beforePush{Store: g.st, do: func() {
		if err := g.reg.Put(ctx, registry.Input{ID: "inst-v1", APIVersion: store.APIv1, HerokuID: "app10@heroku.com",
			ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: old, CurrentConfig: cfg}); err != nil {
			t.Errorf("registering again: %v", err)
		}
	}}
	err := g.run(rotateTask(t, "inst-v1", "rot-moved"))
	r, _ := g.st.Rotation(ctx, "rot-moved")
	if !isPermanent(err) || g.pushes() != 0 || !strings.Contains(r.Error, "another app") {
		t.Errorf("rotation: %v (%s: %s), %d pushes sent; want it failed for good, naming the new registration, nothing sent",
			err, r.State, r.Error, g.pushes())
	}
	if in, _ := g.st.Instance(ctx, "inst-v1"); in.CurrentCredential != old || !g.demo.Valid(old) {
		t.Errorf("current %s (valid %v), want %s still current and valid", in.CurrentCredential, g.demo.Valid(old), old)
	}
}

// A registration update between the run's claim and its push stops the
// push only when it changes where the push goes or what it sets: other
// config vars (the apps read the new ones, still holding the old
// credential, which the promotion would revoke after the grace; a V1 app's
// old var may be another customer's add-on's by then) stop it; a V3
// instance now naming a heroku_id (a V3 push names the add-on) or a V1 app
// named in another case (the same app) do not.
func TestARegistrationUpdateStopsThePushOnlyWhenItMovesIt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v1       bool
		again    registry.Input
		promoted bool
	}{
		{"v3 now naming a heroku_id", false, registry.Input{APIVersion: store.APIv3, HerokuID: "app1@heroku.com",
			ConfigVars: []string{issuer.DefaultConfigVar}}, true},
		{"v1 app in another case", true, registry.Input{APIVersion: store.APIv1, HerokuID: "APP9@heroku.com",
			ConfigVars: []string{issuer.DefaultConfigVar}}, true},
		{"other config vars", true, registry.Input{APIVersion: store.APIv1, HerokuID: "app9@heroku.com",
			ConfigVars: []string{"OTHER_URL"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			id := "inst-1"
			if tc.v1 {
				id = "inst-v1"
				g.provisionV1(t, id, "app9@heroku.com")
			}
			before, _ := g.st.Instance(ctx, id)
			tc.again.ID = id
			g.deps.Store = &beforePush{Store: g.st, do: func() {
				if err := g.reg.Put(ctx, tc.again); err != nil {
					t.Errorf("registering again: %v", err)
				}
			}}
			err := g.run(rotateTask(t, id, "rot-1"))
			r, _ := g.st.Rotation(ctx, "rot-1")
			in, _ := g.st.Instance(ctx, id)
			switch {
			case tc.promoted && (err != nil || r.State != store.RotationPromoted):
				t.Errorf("rotation: %v, %s (%s); want it promoted", err, r.State, r.Error)
			case !tc.promoted && (!isPermanent(err) || g.pushes() != 0 || !strings.Contains(r.Error, "config vars")):
				t.Errorf("rotation: %v, %s (%s), %d pushes sent; want it failed, nothing sent", err, r.State, r.Error, g.pushes())
			case !tc.promoted && (in.CurrentCredential != before.CurrentCredential || !g.demo.Valid(before.CurrentCredential)):
				t.Errorf("current %s, want %s still current and valid", in.CurrentCredential, before.CurrentCredential)
			}
		})
	}
}

// A registration that moves the instance to another database location
// (its database, or its owner role, whose member every credential the
// PostgreSQL issuer mints is) between the mint and the push stops the
// push: the credential opens the old location, which the partner may give
// another customer once the instance left it. The rotation fails
// (push:registration_changed) and the history names the move. The same
// location named again moves nothing; nor does a move before the task's
// run began (a wave's rotation requested earlier): that run mints on the
// new location.
func TestAPushAfterARegistrationMovingTheDatabaseIsNotSent(t *testing.T) {
	a := store.Database{Server: "main", Name: "db_a", Owner: "owner_a"}
	for _, tc := range []struct {
		name      string
		to        store.Database
		beforeRun bool
		promoted  bool
	}{
		{"another database", store.Database{Server: "main", Name: "db_b", Owner: "owner_a"}, false, false},
		{"another owner role", store.Database{Server: "main", Name: "db_a", Owner: "owner_b"}, false, false},
		{"another server", store.Database{Server: "other", Name: "db_a", Owner: "owner_a"}, false, false},
		{"the same location", a, false, true},
		{"moved before the run began", store.Database{Server: "main", Name: "db_b", Owner: "owner_b"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			in := registry.Input{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar}}
			register := func(d store.Database) {
				in.Database = &d
				if err := g.reg.Put(ctx, in); err != nil {
					t.Errorf("registering on %+v: %v", d, err)
				}
			}
			register(a)
			before, _ := g.st.Instance(ctx, "inst-1")
			if tc.beforeRun {
				if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1",
					Reason: store.ReasonScheduled, Queue: "bulk"}); err != nil {
					t.Fatal(err)
				}
				register(tc.to)
			} else {
				g.deps.Store = &beforePush{Store: g.st, do: func() { register(tc.to) }}
			}
			err := g.run(rotateTask(t, "inst-1", "rot-1"))
			r, _ := g.st.Rotation(ctx, "rot-1")
			now, _ := g.st.Instance(ctx, "inst-1")
			if tc.promoted {
				if err != nil || r.State != store.RotationPromoted || g.pushes() != 1 {
					t.Errorf("rotation: %v, %s (%s), %d pushes; want it promoted", err, r.State, r.Error, g.pushes())
				}
				return
			}
			if !isPermanent(err) || g.pushes() != 0 || r.Error == "" || !strings.Contains(r.Error, "database") {
				t.Errorf("rotation: %v, %s (%s), %d pushes sent; want it failed naming the database, nothing sent",
					err, r.State, r.Error, g.pushes())
			}
			if now.CurrentCredential != before.CurrentCredential || !g.demo.Valid(before.CurrentCredential) {
				t.Errorf("current %s, want %s still current and valid", now.CurrentCredential, before.CurrentCredential)
			}
			g.later.Store(int64(2 * grace))
			if task := g.enq.get(tasks.RevokeTaskID("inst-1", r.CredentialID)); task != nil {
				_ = g.run(task)
			}
			if g.demo.Valid(r.CredentialID) {
				t.Errorf("the rotation's credential %s, minted on the old location and never pushed, is still valid", r.CredentialID)
			}
			events, _ := g.st.Events(ctx, "inst-1", 50)
			var noted bool
			for _, e := range events {
				noted = noted || (e.Type == "registered" && strings.Contains(e.Detail, "registration changed: database"))
			}
			if !noted {
				t.Errorf("no registered event says the registration changed its database: %+v", events)
			}
		})
	}
}
