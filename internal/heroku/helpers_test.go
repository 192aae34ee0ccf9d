package heroku_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

// Known secrets that no error, log or printed value may contain.
const (
	accessToken   = "HRKU-access-0a1b2c3d4e5f"
	freshAccess   = "HRKU-access-fresh-9f8e7d6c"
	refreshToken  = "refresh-7c6b5a49382716"
	clientSecret  = "client-secret-5e4d3c2b1a"
	v1Password    = "manifest-password-13579bdf"
	configValue   = "postgres://u_1:5f0c1e2d3b4a59687766554433221100@db.myaddon.example/d_1"
	grantCode     = "grant-code-2468ace0"
	addonID       = "01234567-89ab-cdef-0123-456789abcdef"
	herokuID      = "app123@heroku.com"
	escapedHeroku = "app123%40heroku.com"
)

var allSecrets = []string{accessToken, freshAccess, refreshToken, clientSecret, v1Password, configValue, grantCode}

// reply is one scripted response.
type reply struct {
	status int
	body   string
	header map[string]string
}

// request is what the scripted server received.
type request struct {
	method, path, query string
	header              http.Header
	body                string
}

// script is an HTTP server that answers each "METHOD path" with the next
// scripted reply and records every request.
type script struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	replies map[string][]reply
	got     []request
}

func newScript(t *testing.T) *script {
	t.Helper()
	s := &script{t: t, replies: map[string][]reply{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// on queues replies for "METHOD /escaped/path".
func (s *script) on(route string, rs ...reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies[route] = append(s.replies[route], rs...)
}

func (s *script) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	route := r.Method + " " + r.URL.EscapedPath()
	s.mu.Lock()
	s.got = append(s.got, request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(body)})
	queue := s.replies[route]
	if len(queue) == 0 {
		s.mu.Unlock()
		s.t.Errorf("unscripted request %s", route)
		http.Error(w, `{"id":"unscripted"}`, http.StatusTeapot)
		return
	}
	rep := queue[0]
	s.replies[route] = queue[1:]
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json") // unless the reply says otherwise
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

// requests returns the recorded requests whose route matches.
func (s *script) requests(route string) []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []request
	for _, r := range s.got {
		if r.method+" "+r.path == route {
			out = append(out, r)
		}
	}
	return out
}

// total returns how many requests arrived.
func (s *script) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// memTokens is an in-memory TokenStore.
type memTokens struct {
	mu     sync.Mutex
	tokens map[string]heroku.Token
	saves  int
}

var _ heroku.TokenStore = (*memTokens)(nil)

func newMemTokens(addon string, t heroku.Token) *memTokens {
	return &memTokens{tokens: map[string]heroku.Token{addon: t}}
}

func (m *memTokens) LoadToken(_ context.Context, addonID string) (heroku.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[addonID]
	if !ok {
		return heroku.Token{}, fmt.Errorf("add-on %s: %w", addonID, heroku.ErrNoToken)
	}
	return t, nil
}

func (m *memTokens) SaveToken(_ context.Context, addonID string, t heroku.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[addonID] = t
	m.saves++
	return nil
}

func (m *memTokens) get(addonID string) (heroku.Token, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokens[addonID], m.saves
}

// countingLimiter counts Wait and records Observe; err, when set, is what
// Wait returns.
type countingLimiter struct {
	mu       sync.Mutex
	waits    int
	observed []int // statuses
	err      error
}

var _ heroku.Limiter = (*countingLimiter)(nil)

func (l *countingLimiter) Wait(context.Context, string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits++
	return l.err
}

func (l *countingLimiter) Observe(_ string, _ int, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observed = append(l.observed, status)
}

// fixedClock is a settable clock.
type fixedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// validToken expires well after epoch.
func validToken() heroku.Token {
	return heroku.Token{
		AccessToken:  secret.New(accessToken),
		RefreshToken: secret.New(refreshToken),
		ExpiresAt:    epoch.Add(8 * time.Hour),
	}
}

// newClient builds a client against s for both Heroku hosts.
func newClient(t *testing.T, s *script, opts ...heroku.Option) *heroku.Client {
	t.Helper()
	clock := &fixedClock{now: epoch}
	base := []heroku.Option{
		heroku.WithAPIURL(s.srv.URL),
		heroku.WithIDURL(s.srv.URL + "/"),
		heroku.WithHTTPClient(s.srv.Client()),
		heroku.WithOAuthClientSecret(secret.New(clientSecret)),
		heroku.WithV1Credentials("myaddon", secret.New(v1Password)),
		heroku.WithClock(clock.Now),
	}
	c, err := heroku.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func v3Target() heroku.Target { return heroku.Target{AddonID: addonID, APIVersion: "v3"} }

func v1Target() heroku.Target {
	return heroku.Target{AddonID: addonID, APIVersion: "v1", HerokuID: herokuID}
}

func oneVar() []heroku.ConfigVar {
	return []heroku.ConfigVar{{Name: "MYADDON_URL", Value: secret.New(configValue)}}
}

const (
	patchRoute = "PATCH /addons/" + addonID + "/config"
	tokenRoute = "POST /oauth/token"
	v1Route    = "PUT /vendor/apps/" + escapedHeroku
	v1GetRoute = "GET /vendor/apps/" + escapedHeroku
	v1OKApp    = `{"id":"` + herokuID + `","config":{"MYADDON_URL":"` + configValue + `"}}`
	okConfig   = `[{"name":"MYADDON_URL","value":"` + configValue + `"}]`
	tokenBody  = `{"access_token":"` + freshAccess + `","expires_in":28799,"refresh_token":"` + refreshToken + `","token_type":"Bearer","user_id":"u1"}`
)
