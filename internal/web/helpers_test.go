package web_test

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // Heroku's SSO tokens are SHA-1.
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// Secrets the tests configure; none may ever appear in a response.
const (
	apiToken     = "api-token-7c1e0a9d55b2"
	dashPassword = "operator-pw-41f9"
	ssoSalt      = "2f97bfa52ca102f8874716e2eb1d3b4920ad0be4"
	clientSecret = "oauth-client-secret-9e2"
)

// start is the tests' clock time: just after Heroku's V1 SSO example timestamp.
var start = time.Unix(1267597772, 0).Add(time.Minute).UTC()

// fixture is the web handler over a real Redis, a real asynq client and
// inspector, and the fake Heroku, served over real HTTP.
type fixture struct {
	t     testing.TB
	r     *redistest.Redis
	st    *store.Store
	fake  *herokufake.Fake
	clock *herokufake.ManualClock
	srv   *httptest.Server
	insp  *asynq.Inspector
	// heroURL is the fake Heroku's address.
	heroURL string
	http    *http.Client
	// params are what the handler was built with.
	params web.Params

	mu   sync.Mutex
	seen bytes.Buffer // every response's headers and body, for the secret scan
	// forms counts the sign-in forms ssoForm made: each is signed a second
	// earlier than the one before, as Heroku signs a fresh form for every
	// sign-in, and rekey accepts each form once.
	forms atomic.Int64
}

// newFixture builds a fixture; edit may change the Params before New.
func newFixture(t testing.TB, edit ...func(*web.Params)) *fixture {
	t.Helper()
	return newFixtureWithStore(t, nil, edit...)
}

// fixtureSealer seals the fixtures' stored secrets.
func fixtureSealer(t testing.TB) *seal.Sealer {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return sealer
}

// newFixtureWithStore builds a fixture whose store takes opts too.
func newFixtureWithStore(t testing.TB, opts []store.Option, edit ...func(*web.Params)) *fixture {
	t.Helper()
	f := &fixture{t: t, r: redistest.New(t), clock: herokufake.NewManualClock(start)}
	f.st = store.New(f.r.Client, fixtureSealer(t), append([]store.Option{store.WithClock(f.clock.Now)}, opts...)...)
	f.fake = herokufake.New(herokufake.WithClock(f.clock.Now), herokufake.WithOAuthClientSecret(clientSecret))
	heroSrv := httptest.NewServer(f.fake)
	t.Cleanup(heroSrv.Close)
	f.heroURL = heroSrv.URL
	hc, err := heroku.NewClient(heroku.WithAPIURL(heroSrv.URL), heroku.WithIDURL(heroSrv.URL),
		heroku.WithOAuthClientSecret(secret.New(clientSecret)), heroku.WithTokenStore(f.st))
	if err != nil {
		t.Fatal(err)
	}
	queue := asynq.NewClientFromRedisClient(f.r.Client)
	f.insp = asynq.NewInspectorFromRedisClient(f.r.Client)
	p := web.Params{Store: f.st, Producer: fleet.NewProducer(f.st, queue), Registry: registry.New(f.st, hc, registry.WithLocalStandIn(logplex.LocalStandIn(heroSrv.URL))),
		Inspector: f.insp, Enqueuer: queue, APIToken: secret.New(apiToken),
		DashboardPassword: secret.New(dashPassword), SSOSalt: secret.New(ssoSalt),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "rekey_up 1\n") }),
		Grace:   2 * time.Hour, Logger: zerolog.Nop(), Now: f.clock.Now}
	for _, e := range edit {
		e(&p)
	}
	f.params = p
	h, err := web.New(p)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	// The server's own transport: other tests' servers closing call
	// CloseIdleConnections on http.DefaultTransport, which breaks a call
	// answered with no body (issuer.newTransport says how).
	f.http = &http.Client{Timeout: time.Minute, Transport: f.srv.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

// reply is a response read in full.
type reply struct {
	status int
	header http.Header
	body   string
}

// json decodes the body into v, failing the test when it is not JSON.
func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.body)
	}
}

// do sends a request and records the response for the secret scan.
func (f *fixture) do(method, path string, body io.Reader, header http.Header) reply {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.http.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	for k, v := range resp.Header {
		f.seen.WriteString(k + ": " + strings.Join(v, ", ") + "\n")
	}
	f.seen.Write(b)
	f.seen.WriteByte('\n')
	f.mu.Unlock()
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// api sends an API request with the token.
func (f *fixture) api(method, path, body string) reply {
	f.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + apiToken}, "Content-Type": {"application/json"}}
	return f.do(method, path, strings.NewReader(body), h)
}

// register stores a V3 instance with a current credential.
func (f *fixture) register(id, current string) {
	f.t.Helper()
	err := f.st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: current})
	if err != nil {
		f.t.Fatal(err)
	}
}

// ssoForm is a valid V3 sign-in for id at the fixture's time.
func (f *fixture) ssoForm(id string) url.Values {
	ts := strconv.FormatInt(f.clock.Now().Unix()-f.forms.Add(1)+1, 10)
	return url.Values{"resource_id": {id}, "timestamp": {ts}, "resource_token": {sha1Hex(id + ":" + ssoSalt + ":" + ts)},
		"email": {"dev@example.com"}, "user_id": {"user-1"}, "app": {"my-app"}, "nav-data": {"bmF2LWRhdGE"}}
}

// postForm posts a form with the given cookies.
func (f *fixture) postForm(path string, form url.Values, cookies ...*http.Cookie) reply {
	f.t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	addCookies(h, cookies)
	return f.do(http.MethodPost, path, strings.NewReader(form.Encode()), h)
}

// get sends a GET with the given cookies.
func (f *fixture) get(path string, cookies ...*http.Cookie) reply {
	f.t.Helper()
	h := http.Header{}
	addCookies(h, cookies)
	return f.do(http.MethodGet, path, nil, h)
}

func addCookies(h http.Header, cookies []*http.Cookie) {
	for _, c := range cookies {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
}

// login signs in to id through SSO and returns the session cookie.
func (f *fixture) login(id string) *http.Cookie {
	f.t.Helper()
	resp := f.postForm("/sso/login", f.ssoForm(id))
	if resp.status != http.StatusSeeOther {
		f.t.Fatalf("sso login: got status %d, want 303: %s", resp.status, resp.body)
	}
	c := cookieNamed(resp.header, "rekey_session")
	if c == nil {
		f.t.Fatal("sso login set no session cookie")
	}
	return c
}

// csrf reads the CSRF token from the dashboard's rotate form.
func (f *fixture) csrf(session *http.Cookie) string {
	f.t.Helper()
	page := f.get("/dashboard", session).body
	const marker = `name="csrf_token" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		f.t.Fatalf("dashboard has no CSRF field: %s", page)
	}
	rest := page[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

func cookieNamed(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// rotate runs a rotation of id through the store as a worker would:
// claimed, minted with a secret config, promoted.
func (f *fixture) rotate(id, rot, newCred string, grace time.Duration) {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: rot, Reason: "test"}); err != nil {
		f.t.Fatal(err)
	}
	// Each credential's config is its own (the store refuses a live one
	// under a new id), and each holds the planted secret.
	cfg := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret + "?cred=" + newCred)}
	if err := f.st.SavePending(ctx, id, rot, newCred, cfg); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, id, rot, newCred, grace, "grace "+grace.String()); err != nil {
		f.t.Fatal(err)
	}
}

// pendingSecret is a credential's config value as the issuer minted it.
const pendingSecret = "postgres://u:pending-cred-secret-55a1@db.example.com/1"

// queued lists the ids of the instances with a pending task in queue.
func (f *fixture) queued(queue string) []string {
	f.t.Helper()
	infos, err := f.insp.ListPendingTasks(queue, asynq.PageSize(1000))
	if err != nil && !strings.Contains(err.Error(), "queue not found") {
		f.t.Fatal(err)
	}
	var ids []string
	for _, in := range infos {
		var p struct {
			InstanceID string `json:"instance_id"`
		}
		_ = json.Unmarshal(in.Payload, &p)
		ids = append(ids, p.InstanceID)
	}
	return ids
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s)) //nolint:gosec // protocol-defined
	return hex.EncodeToString(sum[:])
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// registerWithGrant registers id through the API with a grant code from
// the fake Heroku, and returns the code and the tokens it was exchanged for.
func (f *fixture) registerWithGrant(id string) (string, heroku.Token) {
	f.t.Helper()
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		f.t.Fatal(err)
	}
	code := f.fake.GrantCode(id)
	body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0","oauth_grant":{"code":"` + code + `"}}`
	if resp := f.api(http.MethodPut, "/api/v1/instances/"+id, body); resp.status != http.StatusOK {
		f.t.Fatalf("register with grant: got status %d, want 200: %s", resp.status, resp.body)
	}
	tok, err := f.st.LoadToken(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return code, tok
}

// v1Instance is a V1 registration, of an app of its own (one heroku_id
// per live V1 instance).
func v1Instance(id string) store.Registration {
	return store.Registration{ID: id, APIVersion: store.APIv1, HerokuID: "app-" + id + "@heroku.com", ConfigVars: []string{"MYADDON_URL"}}
}

// signedV3 is a V3 sign-in for id at the Unix time ts, correctly signed.
func signedV3(id, ts string) url.Values {
	return url.Values{"resource_id": {id}, "timestamp": {ts}, "resource_token": {sha1Hex(id + ":" + ssoSalt + ":" + ts)}}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// registerMany registers ids, many at once.
func (f *fixture) registerMany(ids []string) {
	f.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	next := make(chan string)
	for range 64 {
		wg.Go(func() {
			for id := range next {
				errs <- f.st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
					ConfigVars: []string{"MYADDON_URL"}})
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			f.t.Fatal(err)
		}
	}
}
