package herokufake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	addonA = "01234567-89ab-4cde-8f01-23456789abcd"
	addonB = "fedcba98-7654-4321-8fed-cba987654321"
	urlVar = "MYADDON_URL"
)

// env is a fake served over real HTTP with a manual clock.
type env struct {
	t     *testing.T
	fake  *herokufake.Fake
	srv   *httptest.Server
	clock *herokufake.ManualClock
}

func newEnv(t *testing.T, opts ...herokufake.Option) *env {
	t.Helper()
	clock := herokufake.NewManualClock(start)
	fake := herokufake.New(append([]herokufake.Option{herokufake.WithClock(clock.Now)}, opts...)...)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &env{t: t, fake: fake, srv: srv, clock: clock}
}

// spec is a V3 add-on on app "app-"+id[:4] declaring MYADDON_URL and MYADDON_KEY.
func spec(id string) herokufake.AddonSpec {
	return herokufake.AddonSpec{
		ID:            id,
		App:           "app-" + id[:4],
		ConfigVars:    []string{urlVar, "MYADDON_KEY"},
		InitialConfig: map[string]string{urlVar: "postgres://old"},
	}
}

func (e *env) add(s herokufake.AddonSpec) {
	e.t.Helper()
	if err := e.fake.AddAddon(s); err != nil {
		e.t.Fatalf("AddAddon: %v", err)
	}
}

// reply is a response read in full.
type reply struct {
	status int
	header http.Header
	body   string
	err    struct{ ID, Message, URL string }
}

func (e *env) do(req *http.Request) reply {
	e.t.Helper()
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := reply{status: res.StatusCode, header: res.Header, body: string(b)}
	if res.StatusCode >= 400 {
		_ = json.Unmarshal(b, &r.err)
	}
	return r
}

func (e *env) request(method, path, body string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	return req
}

// v3 sends a V3 call with the version Accept header and, if token is set, a bearer token.
func (e *env) v3(method, path, token, body string) reply {
	e.t.Helper()
	req := e.request(method, path, body)
	req.Header.Set("Accept", "application/vnd.heroku+json; version=3")
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

func (e *env) patch(addonID, token, name, value string) reply {
	e.t.Helper()
	body := `{"config":[{"name":` + quote(name) + `,"value":` + quote(value) + `}]}`
	return e.v3(http.MethodPatch, "/addons/"+addonID+"/config", token, body)
}

// oauth posts a form to /oauth/token.
func (e *env) oauth(form url.Values) reply {
	e.t.Helper()
	req := e.request(http.MethodPost, "/oauth/token", form.Encode())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req)
}

type tokens struct {
	AccessToken  string  `json:"access_token"`
	ExpiresIn    int     `json:"expires_in"`
	RefreshToken string  `json:"refresh_token"`
	TokenType    string  `json:"token_type"`
	UserID       string  `json:"user_id"`
	SessionNonce *string `json:"session_nonce"`
}

// exchange redeems a fresh code for addonID.
func (e *env) exchange(addonID string) tokens {
	e.t.Helper()
	r := e.oauth(url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {e.fake.GrantCode(addonID)},
		"client_secret": {herokufake.DefaultClientSecret},
	})
	if r.status != http.StatusOK {
		e.t.Fatalf("code exchange: %d %s", r.status, r.body)
	}
	var tok tokens
	decode(e.t, r.body, &tok)
	return tok
}

func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// check fails the test with what differs when got != want.
func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
