package handlers_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// useHeroku points the rig's Heroku client at wrap (in front of the fake).
func (g *rig) useHeroku(t *testing.T, wrap http.Handler, timeout time.Duration) {
	t.Helper()
	srv := httptest.NewServer(wrap)
	t.Cleanup(srv.Close)
	hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
		heroku.WithHTTPClient(&http.Client{Timeout: timeout}),
		heroku.WithTokenStore(g.st), heroku.WithOAuthClientSecret(secret.New(herokufake.DefaultClientSecret)),
		heroku.WithV1Credentials(herokufake.DefaultManifestID, secret.New(herokufake.DefaultManifestPassword)))
	if err != nil {
		t.Fatal(err)
	}
	g.deps.Heroku = hc
}

// A push that timed out on rekey's side may still land: Heroku goes on with
// a request whose client gave up. The push sent again is refused and the
// config read back before the late one lands holds the old values; that
// proves nothing while the first push is unanswered, so the credential is
// kept unconfirmed, not discarded and revoked, and the app that gets it a
// moment later keeps working (I1).
func TestPushThatTimedOutKeepsItsCredential(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	landed := g.firstPushLandsLate(t, 300*time.Millisecond, func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // no answer before rekey's client gives up
	})
	// The push sent again, within the run, is refused; the late one comes
	// seconds after.
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(422))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); !isPermanent(err) {
		t.Errorf("run (timed out push, then 422) = %v, want permanent", err)
	}
	if pushes := len(g.fake.Calls(herokufake.PatchConfig)); pushes != 1 {
		t.Errorf("the fake answered %d pushes before the late one, want the one sent again", pushes)
	}
	g.keptUntilTheLatePushLands(t, "rot-1", landed)
}

// firstPushLandsLate serves the rig's Heroku through the fake, behind a
// client whose timeout is timeout, but for the first push, which answer
// answers and the fake applies 3 s later, as Heroku goes on with a request
// whatever its client or a front before it was answered; landed closes
// once it has.
func (g *rig) firstPushLandsLate(t *testing.T, timeout time.Duration, answer http.HandlerFunc) (landed <-chan struct{}) {
	t.Helper()
	var first atomic.Bool
	done := make(chan struct{})
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && first.CompareAndSwap(false, true) {
			b, _ := io.ReadAll(r.Body)
			late := r.Clone(context.Background())
			late.Body = io.NopCloser(bytes.NewReader(b))
			go func() {
				time.Sleep(3 * time.Second)
				g.fake.ServeHTTP(httptest.NewRecorder(), late)
				close(done)
			}()
			answer(w, r)
			return
		}
		g.fake.ServeHTTP(w, r)
	}), timeout)
	return done
}

// keptUntilTheLatePushLands checks that the credential of rotation rot is
// kept unconfirmed while its first push may land, runs its revoke task if
// one was enqueued, and, once that push has landed, that Heroku's config
// holds no credential rekey revoked (I1).
func (g *rig) keptUntilTheLatePushLands(t *testing.T, rot string, landed <-chan struct{}) {
	t.Helper()
	ctx := context.Background()
	r, _ := g.st.Rotation(ctx, rot)
	c, _ := g.st.Credential(ctx, "inst-1", r.CredentialID)
	if c.State != store.CredentialUnconfirmed {
		t.Errorf("rotation %s, credential %s %s; want it kept unconfirmed while the first push is unanswered", r.State, c.ID, c.State)
	}
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)); task != nil {
		t.Logf("revoke: %v", g.run(task))
	}
	<-landed
	if held := g.configCredential(t, "inst-1"); held == c.ID && !g.demo.Valid(held) {
		t.Errorf("I1 broken: Heroku's config holds %s, which rekey revoked (state %s)", held, c.State)
	}
}

// A push applied but answered 503, then the push sent again in the same
// run refused, then a read-back with no vars at all: the 503 leaves the
// first push unsettled, and the refusal settles only the push it answered,
// so the read-back proves nothing and the credential Heroku holds is kept
// (I1).
func TestPushAnswered5xxKeepsItsCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	var patches atomic.Int32
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int32(0)
		if r.Method == http.MethodPatch {
			n = patches.Add(1)
		}
		switch {
		case n == 1:
			// Applied, but the answer is a 503 (ambiguous).
			g.fake.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case n == 2:
			// The push sent again is refused.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"id":"invalid_params","message":"refused"}`))
			return
		case r.Method == http.MethodGet && r.URL.Path == "/addons/inst-1/config":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("[]"))
			return
		}
		g.fake.ServeHTTP(w, r)
	}), 5*time.Second)
	t.Logf("run (applied, 503, then 422): %v", g.run(rotateTask(t, "inst-1", "rot-1")))
	rot, _ := g.st.Rotation(ctx, "rot-1")
	if a, s, err := g.st.PushAttempts(ctx, "rot-1"); err != nil || a != 2 || s != 1 {
		t.Errorf("push attempts %d, settled %d (%v); want 2 sent and only the refused one settled", a, s, err)
	}
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)); task != nil {
		t.Logf("revoke: %v", g.run(task))
	}
	c, _ = g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if c.State != store.CredentialUnconfirmed {
		t.Errorf("credential %s %s after a 503 and a refusal; want it kept unconfirmed", c.ID, c.State)
	}
	held := g.configCredential(t, "inst-1")
	if held == c.ID && !g.demo.Valid(held) {
		t.Errorf("I1 broken: Heroku's config holds %s, which rekey revoked (state %s)", held, c.State)
	}
}

// racingIssuer answers two concurrent mints of one rotation with the same
// id, the second with the current credential's config.
type racingIssuer struct {
	*issuer.Demo
	st     *store.Store
	calls  atomic.Int32
	second chan struct{}
	reuse  map[string]secret.String
}

func (i *racingIssuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := i.Demo.Mint(ctx, instanceID, rotationID)
	switch i.calls.Add(1) {
	case 1:
		<-i.second
	case 2:
		close(i.second)
		for {
			if r, _ := i.st.Rotation(ctx, rotationID); r.CredentialID != "" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Config = i.reuse
	}
	return c, err
}

// Two runs of one rotation mint at once, and the issuer answers the second
// with the same id but another config (here the current credential's).
// Neither config is pushed (store.ErrReminted): the rotation fails, and
// whatever Heroku holds stays valid (I1, I6).
func TestSecondMintWithAnotherConfigIsNotPushed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	cur, err := g.demo.Mint(ctx, "inst-1", "provision")
	if err != nil {
		t.Fatal(err)
	}
	g.deps.Issuer = &racingIssuer{Demo: g.demo, st: g.st, second: make(chan struct{}), reuse: cur.Config}
	g.fake.Script(herokufake.PatchConfig, herokufake.Delay(time.Second), herokufake.Delay(2*time.Second))
	var wg sync.WaitGroup
	for _, name := range []string{"A", "B"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Logf("run %s: %v", name, g.run(rotateTask(t, "inst-1", "rot-1")))
		}()
	}
	wg.Wait()
	in, _ := g.st.Instance(ctx, "inst-1")
	held := g.configCredential(t, "inst-1")
	t.Logf("current %s, Heroku holds %s (old %s)", in.CurrentCredential, held, cur.ID)
	g.later.Store(int64(2 * grace))
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", cur.ID)); task != nil {
		t.Logf("revoke old: %v", g.run(task))
	}
	if !g.demo.Valid(held) {
		t.Errorf("I1 broken: Heroku's config holds %s, revoked; rekey's current is %s", held, in.CurrentCredential)
	}
}

// swappedIssuer puts a secret where a var name belongs.
type swappedIssuer struct{ *issuer.Demo }

func (i swappedIssuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := i.Demo.Mint(ctx, instanceID, rotationID)
	if err == nil {
		for name, v := range c.Config {
			c.Config = map[string]secret.String{v.Reveal(): secret.New(name)}
		}
	}
	return c, err
}

// An issuer that swaps names and values puts a secret where a var name
// belongs: the failure quotes no such name, only its length (I5).
func TestMadeUpVarNameIsNotEchoed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.deps.Issuer = swappedIssuer{g.demo}
	err := g.run(rotateTask(t, "inst-1", "rot-1"))
	r1, _ := g.st.Rotation(ctx, "rot-1")
	c, _ := g.demo.Mint(ctx, "inst-1", "rot-1")
	v := c.Config[issuer.DefaultConfigVar].Reveal()
	if err == nil || !bytes.Contains([]byte(r1.Error), []byte("a name of ")) {
		t.Errorf("rotation error %q (%v); want the made-up name reported by its length", r1.Error, err)
	}
	pw := v[bytes.LastIndexByte([]byte(v), ':')+1 : bytes.IndexByte([]byte(v), '@')]
	if err != nil && bytes.Contains([]byte(err.Error()), []byte(pw[:20])) {
		t.Errorf("20 bytes of the minted password %q appear in the task error", pw)
	}
	if bytes.Contains([]byte(r1.Error), []byte(pw[:20])) {
		t.Errorf("20 bytes of the minted password %q appear in the rotation's stored error", pw)
	}
}

// A push answered 2xx without the config it set (a page from a host that
// is not Heroku, a proxy, an empty config) proves nothing, not even that it
// is over: a proxy that answered for Heroku may still hand it the push. The
// rotation reads the config back, as after a 5xx: applied, the credential
// is promoted; not held, or no config can be read back, the rotation fails
// and the credential is kept unconfirmed, never revoked on its own, and
// when the push lands later the apps get a credential that works (I1). In
// every case the current credential is not revoked because of that 2xx.
func TestPushAnsweredWithoutItsConfig(t *testing.T) {
	t.Parallel()
	page := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Welcome to nginx!</body></html>"))
	}
	for _, tc := range []struct {
		name                 string
		apply                string // "now", "later" (after the rotation and any revocation) or ""
		pageOnRead           bool
		answer               string
		state, code, current string // current: "new" or "old"
	}{
		{"applied, answered with a page", "now", false, "page", store.CredentialCurrent, "", "new"},
		{"not applied, answered with an empty config", "", false, "[]", store.CredentialUnconfirmed, "push:unexpected_answer", "old"},
		{"not applied, answered and read back with a page", "", true, "page", store.CredentialUnconfirmed, "push:unexpected_answer", "old"},
		{"answered with a page by a proxy, applied later", "later", false, "page", store.CredentialUnconfirmed, "push:unexpected_answer", "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			before, err := g.st.Instance(ctx, "inst-1")
			if err != nil {
				t.Fatal(err)
			}
			var late *http.Request
			g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPatch:
					switch tc.apply {
					case "now":
						g.fake.ServeHTTP(httptest.NewRecorder(), r)
					case "later":
						b, _ := io.ReadAll(r.Body)
						late = r.Clone(context.Background())
						late.Body = io.NopCloser(bytes.NewReader(b))
					}
					if tc.answer == "page" {
						page(w)
					} else {
						w.Header().Set("Content-Type", "application/json")
						_, _ = w.Write([]byte(tc.answer))
					}
					return
				case r.Method == http.MethodGet && tc.pageOnRead:
					page(w)
					return
				}
				g.fake.ServeHTTP(w, r)
			}), 5*time.Second)
			err = g.run(rotateTask(t, "inst-1", "rot-1"))
			t.Logf("run: %v", err)
			rot, _ := g.st.Rotation(ctx, "rot-1")
			c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
			in, _ := g.st.Instance(ctx, "inst-1")
			want := before.CurrentCredential
			if tc.current == "new" {
				want = c.ID
			}
			if c.State != tc.state || in.LastErrorCode != tc.code || in.CurrentCredential != want {
				t.Errorf("credential %s, last error code %q, current %s; want %s, %q, current %s (%s)",
					c.State, in.LastErrorCode, in.CurrentCredential, tc.state, tc.code, want, tc.current)
			}
			if task := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)); task != nil {
				t.Errorf("the new credential %s, %s, has a revoke task", c.ID, c.State)
				t.Logf("revoke: %v", g.run(task))
			}
			if tc.current == "old" {
				if task := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential)); task != nil {
					t.Errorf("the current credential %s has a revoke task", before.CurrentCredential)
				}
			}
			if late != nil {
				g.fake.ServeHTTP(httptest.NewRecorder(), late)
			}
			if held := g.configCredential(t, "inst-1"); !g.demo.Valid(held) {
				t.Errorf("I1 broken: Heroku's config holds %s, which is revoked", held)
			}
		})
	}
}

// A front that applies every push to Heroku and answers each 503 (a
// router timing out on a slow Heroku) must not keep the rotation pushing
// for ever, never promoted: once two pushes went unanswered, the next run
// reads the config back, finds its credential there, and promotes it
// without pushing again.
func TestPushesAppliedButAnswered5xxArePromotedOnceReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	var patches atomic.Int32
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			patches.Add(1)
			g.fake.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		g.fake.ServeHTTP(w, r)
	}), 5*time.Second)
	before, _ := g.st.Instance(ctx, "inst-1")
	var err error
	for run := 1; run <= 4; run++ {
		if err = g.run(rotateTask(t, "inst-1", "rot-503")); err == nil {
			break
		}
		t.Logf("run %d: %v", run, err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-503")
	in, _ := g.st.Instance(ctx, "inst-1")
	if err != nil || rot.State != store.RotationPromoted || in.CurrentCredential != rot.CredentialID {
		t.Fatalf("after 4 runs (last: %v) rotation %s, current %s; want %s promoted", err, rot.State, in.CurrentCredential, rot.CredentialID)
	}
	if n := patches.Load(); n != 2 {
		t.Errorf("%d pushes, want 2: the run after them promotes what Heroku holds", n)
	}
	if held := g.configCredential(t, "inst-1"); held != rot.CredentialID {
		t.Errorf("Heroku holds %s, rekey's current is %s", held, rot.CredentialID)
	}
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential)); task == nil {
		t.Errorf("no revoke task for the old credential %s", before.CurrentCredential)
	}
}
