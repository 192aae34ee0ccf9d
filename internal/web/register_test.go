package web_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// failingScripts makes a Redis client's script calls fail, as a Redis
// that is loading its dataset or failing over answers: after pass calls
// went through, left calls fail, then they pass. An EVALSHA that Redis
// answers NOSCRIPT (the script not cached yet, go-redis sends it again
// with EVAL) ran nothing and does not count as a pass, so the counts do
// not depend on which tests of the package ran first on the server.
type failingScripts struct{ pass, left atomic.Int64 }

func (h *failingScripts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failingScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		n := cmd.Name()
		if n != "evalsha" && n != "eval" {
			return next(ctx, cmd)
		}
		if h.pass.Add(-1) < 0 && h.left.Add(-1) >= 0 {
			err := errors.New("LOADING Redis is loading the dataset in memory")
			cmd.SetErr(err)
			return err
		}
		err := next(ctx, cmd)
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			h.pass.Add(1)
		}
		return err
	}
}

func (h *failingScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// withFailingRegistry serves f's handler again with a registry whose
// Redis fails fails script calls after the first pass; it returns the hook
// to change those counts. A registration with a grant runs one script
// before the exchange (its claim), then one for each attempt to store it.
func (f *fixture) withFailingRegistry(pass, fails int64) *failingScripts {
	f.t.Helper()
	hook := &failingScripts{}
	hook.pass.Store(pass)
	hook.left.Store(fails)
	rdb := redis.NewClient(&redis.Options{Addr: f.r.Client.Options().Addr, DB: f.r.Client.Options().DB})
	f.t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(hook)
	st := store.New(rdb, fixtureSealer(f.t), store.WithClock(f.clock.Now))
	hc, err := heroku.NewClient(heroku.WithAPIURL(f.heroURL), heroku.WithIDURL(f.heroURL),
		heroku.WithOAuthClientSecret(secret.New(clientSecret)), heroku.WithTokenStore(f.st))
	if err != nil {
		f.t.Fatal(err)
	}
	p := f.params
	p.Registry = registry.New(st, hc, registry.WithStoreRetries(time.Millisecond, time.Millisecond))
	h, err := web.New(p)
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	f.t.Cleanup(f.srv.Close)
	return hook
}

// workerStarted makes the fingerprint key, as the first worker to start
// does: a registration before it makes the key itself, which is no part
// of the registration's own writes these tests count.
func workerStarted(t *testing.T, f *fixture) {
	t.Helper()
	if err := f.st.CheckFingerprintKey(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func grantBody(code string) string {
	return `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0","oauth_grant":{"code":"` + code + `"}}`
}

// TestFailedTokenSaveTellsTheTruth: Heroku exchanged the grant, then Redis
// failed every attempt to store the registration. The answer says the
// grant is spent and nothing was stored, and both are true.
func TestFailedTokenSaveTellsTheTruth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	workerStarted(t, f)
	// The claim passes, the three attempts to store fail, the release of
	// the claim passes (Redis is back by then).
	hook := f.withFailingRegistry(1, 3)
	code := f.fake.GrantCode("inst-1")
	before := redistest.Dump(t, f.r)
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	for _, want := range []string{"exchanged with Heroku", "nothing was stored", "cannot be used again", "re-provision"} {
		if !strings.Contains(resp.body, want) {
			t.Errorf("answer lacks %q: %s", want, resp.body)
		}
	}
	if resp.status != http.StatusServiceUnavailable {
		t.Errorf("got status %d, want 503", resp.status)
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Errorf("a registration that was not stored changed Redis:\n%s", after)
	}
	// The answer was right: the grant is spent.
	hook.left.Store(0)
	resp = f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, "Heroku refused the oauth_grant") {
		t.Errorf("the same grant again: got %d, want 422 from Heroku: %s", resp.status, resp.body)
	}
	if strings.Contains(f.seen.String(), code) {
		t.Error("a response quoted the grant code")
	}
}

// TestBriefStoreFailureLosesNoGrant: Redis fails the first attempt to
// store the registration; the registry tries again and the grant is not lost.
func TestBriefStoreFailureLosesNoGrant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	workerStarted(t, f)
	f.withFailingRegistry(1, 1)
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(f.fake.GrantCode("inst-1")))
	if resp.status != http.StatusOK {
		t.Fatalf("got %d, want 200 after one failed attempt: %s", resp.status, resp.body)
	}
	if tok, err := f.st.LoadToken(context.Background(), "inst-1"); err != nil || tok.RefreshToken.IsZero() {
		t.Fatalf("tokens after the registration: %v", err)
	}
	// An update of the registered instance may omit the grant.
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", `{"api_version":"v3","config_vars":["MYADDON_URL"],"grace":"3h"}`); resp.status != http.StatusOK {
		t.Errorf("update without oauth: got %d, want 200: %s", resp.status, resp.body)
	}
}

// TestClaimFailureSpendsNoGrant: Redis fails before the grant is exchanged
// (its claim, store.ClaimGrant): the answer says nothing was stored, the
// code never reached Heroku, and the same PUT again registers the instance.
func TestClaimFailureSpendsNoGrant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	f.withFailingRegistry(0, 1)
	code := f.fake.GrantCode("inst-1")
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	if resp.status < 500 || !strings.Contains(resp.body, "nothing was stored") {
		t.Fatalf("got %d, want a 5xx saying nothing was stored: %s", resp.status, resp.body)
	}
	if got := f.exchanges(); len(got) != 0 {
		t.Fatalf("token calls by status: %v, want none", got)
	}
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code)); resp.status != http.StatusOK {
		t.Fatalf("the same PUT again: got %d, want 200: %s", resp.status, resp.body)
	}
}

// A grant exchange answered 2xx with a page (HEROKU_ID_URL naming another
// host, a proxy) is no refusal of Heroku's: the code may still be good, so
// the partner is told to try again (503), not that Heroku refused it (422),
// and nothing is stored.
func TestGrantExchangeAnsweredWithAPageIsRetried(t *testing.T) {
	t.Parallel()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<html><body>This domain is parked.</body></html>"))
	}))
	t.Cleanup(page.Close)
	f := newFixture(t, func(p *web.Params) {
		hc, err := heroku.NewClient(heroku.WithAPIURL(page.URL), heroku.WithIDURL(page.URL),
			heroku.WithOAuthClientSecret(secret.New(clientSecret)), heroku.WithTokenStore(p.Store))
		if err != nil {
			t.Fatal(err)
		}
		p.Registry = registry.New(p.Store, hc)
	})
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody("a-code-heroku-never-saw"))
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" ||
		!strings.Contains(resp.body, "HEROKU_ID_URL") {
		t.Fatalf("PUT with a grant whose exchange got a page: %d %s; want 503, Retry-After, naming HEROKU_ID_URL", resp.status, resp.body)
	}
	if _, err := f.st.Instance(context.Background(), "inst-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the instance was stored: %v", err)
	}
}

// failingTransactions makes a Redis client's MULTI/EXEC pipelines fail,
// as a Redis failing over answers, while left > 0; scripts pass.
type failingTransactions struct{ left atomic.Int64 }

func (h *failingTransactions) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failingTransactions) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *failingTransactions) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "multi" && h.left.Add(-1) >= 0 {
			err := errors.New("READONLY You can't write against a read only replica.")
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}

// TestLogInputSaveFailureAfterGrantTellsTheTruth: Heroku exchanged the
// grant and the instance was stored with its tokens, then Redis failed to
// store the log_input_url. The answer must not tell the partner that
// nothing was stored and the add-on must be re-provisioned: the instance
// is registered, and the same PUT again (a repeat, the code not sent to
// Heroku again) stores the rest.
func TestLogInputSaveFailureAfterGrantTellsTheTruth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	hook := &failingTransactions{}
	hook.left.Store(1)
	rdb := redis.NewClient(&redis.Options{Addr: f.r.Client.Options().Addr, DB: f.r.Client.Options().DB})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(hook)
	hc, err := heroku.NewClient(heroku.WithAPIURL(f.heroURL), heroku.WithIDURL(f.heroURL),
		heroku.WithOAuthClientSecret(secret.New(clientSecret)), heroku.WithTokenStore(f.st))
	if err != nil {
		t.Fatal(err)
	}
	p := f.params
	p.Registry = registry.New(store.New(rdb, fixtureSealer(t), store.WithClock(f.clock.Now)), hc)
	h, err := web.New(p)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)

	const logs = "https://user:logplex-token-31c9@logs.example.com/logs"
	body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"` + f.fake.GrantCode("inst-1") +
		`"},"log_input_url":"` + logs + `"}`
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", body)
	if resp.status < 500 || resp.header.Get("Retry-After") == "" {
		t.Errorf("got %d (Retry-After %q), want a 5xx with Retry-After: the log_input_url was not stored", resp.status, resp.header.Get("Retry-After"))
	}
	for _, never := range []string{"nothing was stored", "re-provision", "cannot be used again"} {
		if strings.Contains(resp.body, never) {
			t.Errorf("the answer says %q, but the instance and its tokens were stored: %s", never, resp.body)
		}
	}
	if _, err := f.st.LoadToken(context.Background(), "inst-1"); err != nil {
		t.Fatalf("the instance's tokens: %v", err)
	}
	again := f.api(http.MethodPut, "/api/v1/instances/inst-1", body)
	if again.status != http.StatusOK {
		t.Fatalf("the same PUT again: got %d, want 200: %s", again.status, again.body)
	}
	if u, err := f.st.LogInput(context.Background(), "inst-1"); err != nil || u.Reveal() != logs {
		t.Errorf("log_input_url after the retry: stored %v (%v), want it stored", !u.IsZero(), err)
	}
	if got := f.exchanges(); got[http.StatusOK] != 1 || len(got) != 1 {
		t.Errorf("token calls by status: %v, want the one exchange of the first PUT", got)
	}
	if strings.Contains(f.seen.String(), "logplex-token-31c9") {
		t.Error("a response quoted the log_input_url's token")
	}
}

// TestStoreFailureIsNotBlamedOnHeroku: Redis fails every attempt to store
// a registration that carries tokens, no grant. Heroku was never called;
// the answer must not send the partner to look at Heroku's OAuth
// endpoint, must say nothing was stored, and the operators get the error
// in the log.
func TestStoreFailureIsNotBlamedOnHeroku(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	f := newFixture(t, func(p *web.Params) { p.Logger = zerolog.New(&logs) })
	f.withFailingRegistry(0, 10)
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1",
		`{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth":{"refresh_token":"refresh-tok-9d2e"}}`)
	if resp.status < 500 || !strings.Contains(resp.body, "nothing was stored") {
		t.Errorf("got %d, want a 5xx saying nothing was stored: %s", resp.status, resp.body)
	}
	for _, never := range []string{"Heroku", "oauth_grant"} {
		if strings.Contains(resp.body, never) {
			t.Errorf("the answer names %q, but Heroku was never called: %s", never, resp.body)
		}
	}
	if !strings.Contains(logs.String(), "LOADING") {
		t.Errorf("the log lacks the store's error: %s", logs.String())
	}
	if got := f.exchanges(); len(got) != 0 {
		t.Errorf("token calls by status: %v, want none", got)
	}
}

// syncBuffer is a strings.Builder safe for the handler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A partner's re-provisioning that names as current the credential of the
// add-on's first life, long rotated away and revoked, is refused over the
// API (422, saying which id and why) before its oauth_grant is sent to
// Heroku, so the same registration with the right credential id can use
// the same grant. The provisioning's PUT sent again while the instance is
// live names the same revoked id and is accepted: it changes no current
// credential.
func TestReprovisionNamingARevokedCredentialIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.registerWithGrant("inst-1")
	f.rotate("inst-1", "rot-1", "cred-1", time.Hour)
	if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
		t.Fatal(err)
	}
	again := `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", again); resp.status != http.StatusOK {
		t.Errorf("the provisioning's PUT sent again: got %d, want 200: %s", resp.status, resp.body)
	}
	if resp := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); resp.status >= 300 {
		t.Fatalf("DELETE: got %d: %s", resp.status, resp.body)
	}
	before := f.exchanges()
	code := f.fake.GrantCode("inst-1")
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, `current_credential_id \"cred-0\"`) ||
		!strings.Contains(resp.body, "was revoked") || !strings.Contains(resp.body, "nothing was stored") {
		t.Fatalf("re-provisioning naming the revoked credential: got %d, want 422 naming it: %s", resp.status, resp.body)
	}
	if got := f.exchanges(); len(got) != len(before) || got[http.StatusOK] != before[http.StatusOK] {
		t.Errorf("token calls by status %v after the refusal, %v before: want the grant not sent", got, before)
	}
	if in, err := f.st.Instance(ctx, "inst-1"); err != nil || in.DeprovisionedAt.IsZero() {
		t.Errorf("instance after the refusal: %+v, %v; want it still deprovisioned", in, err)
	}
	fixed := strings.Replace(grantBody(code), `"cred-0"`, `"cred-2"`, 1)
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", fixed); resp.status != http.StatusOK {
		t.Fatalf("the same grant with the new credential's id: got %d, want 200: %s", resp.status, resp.body)
	}
	if in, _ := f.st.Instance(ctx, "inst-1"); !in.DeprovisionedAt.IsZero() || in.CurrentCredential != "cred-2" {
		t.Errorf("instance registered again: %+v; want it live with cred-2", in)
	}
}

// A PUT to a web process whose REKEY_ENCRYPTION_KEYS opens no fingerprint
// key (another key than the workers') stores nothing: the OAuth tokens it
// would seal are tokens no worker could read.
func TestPutUnderAnotherEncryptionKeyStoresNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fleetKey, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.New(f.r.Client, fleetKey).CheckFingerprintKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := f.api(http.MethodPut, "/api/v1/instances/inst-1", `{"api_version":"v3","config_vars":["MYADDON_URL"],`+
		`"oauth":{"access_token":"at-1","refresh_token":"rt-1","expires_at":"2030-01-01T00:00:00Z"}}`)
	if rep.status != http.StatusServiceUnavailable || !strings.Contains(rep.body, "nothing was stored") {
		t.Errorf("PUT under another key: %d %s, want 503 saying nothing was stored", rep.status, rep.body)
	}
	if _, err := f.st.Instance(context.Background(), "inst-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("inst-1 after the refused PUT: %v, want not registered", err)
	}
}
