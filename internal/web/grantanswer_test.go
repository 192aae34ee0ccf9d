package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/testbuf"
	"github.com/rekeyhq/rekey/internal/web"
)

// A grant's exchange redirected (a HEROKU_ID_URL of http://, a host that
// sends every request to a sign-in page) never reached Heroku's token
// endpoint, and its code is still good: the registration is answered 503
// "not Heroku's answer, try again", as a page answered 200 is, not 422
// "Heroku refused the oauth_grant", which sends the partner to
// re-provision the add-on. The same PUT goes through once the redirect
// stops.
func TestAGrantExchangeRedirectedIsNotHerokusRefusal(t *testing.T) {
	t.Parallel()
	var redirect atomic.Bool
	redirect.Store(true)
	f, code := grantBehindFront(t, func(w http.ResponseWriter, r *http.Request, _ *herokufake.Fake) bool {
		if r.URL.Path != "/oauth/token" || !redirect.Load() {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Location", "https://sso.example.com/login")
		w.WriteHeader(http.StatusMovedPermanently)
		return true
	})
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || !strings.Contains(resp.body, "not Heroku's") {
		t.Fatalf("PUT with the exchange redirected: %d %s; want 503 with Retry-After, saying the answer was not Heroku's", resp.status, resp.body)
	}
	redirect.Store(false)
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code)); resp.status != http.StatusOK {
		t.Fatalf("the same PUT once the redirect stopped: %d %s; want 200", resp.status, resp.body)
	}
}

// A wrong HEROKU_OAUTH_CLIENT_SECRET gets the grant's exchange refused with
// OAuth's invalid_client (or unauthorized_client), which names rekey's
// client, not the code: the code was not looked at and is still good, and
// every registration meets the same refusal until the secret is fixed. The
// registration is answered 503 with Retry-After naming the setting, not 422
// "re-provision the add-on", and the log says which setting to fix; the
// same PUT registers once Heroku takes the client again. A 401 that names
// no client (Heroku's "unauthorized") still refuses the grant.
func TestAGrantExchangeRefusingRekeysClientIsNoRefusalOfTheGrant(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status int
		body   string
		client bool // the answer names rekey's client
	}{
		{http.StatusBadRequest, `{"error":"invalid_client","error_description":"client authentication failed"}`, true},
		{http.StatusUnauthorized, `{"error":"invalid_client"}`, true},
		{http.StatusBadRequest, `{"error":"unauthorized_client"}`, true},
		{http.StatusUnauthorized, `{"id":"unauthorized","message":"Invalid credentials provided."}`, false},
	} {
		t.Run(fmt.Sprintf("%d %s", c.status, c.body), func(t *testing.T) {
			t.Parallel()
			var refuse atomic.Bool
			refuse.Store(true)
			var logs testbuf.Buffer
			f, code := grantBehindFront(t, func(w http.ResponseWriter, r *http.Request, _ *herokufake.Fake) bool {
				if r.URL.Path != "/oauth/token" || !refuse.Load() {
					return false
				}
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.body)
				return true
			}, func(p *web.Params) { p.Logger = zerolog.New(&logs) })
			resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
			if !c.client {
				if resp.status != http.StatusUnprocessableEntity {
					t.Fatalf("PUT with the grant refused: %d %s; want 422", resp.status, resp.body)
				}
				return
			}
			if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" ||
				!strings.Contains(resp.body, "HEROKU_OAUTH_CLIENT_SECRET") || strings.Contains(resp.body, "re-provision") {
				t.Fatalf("PUT with rekey's client refused: %d %s; want 503 with Retry-After naming HEROKU_OAUTH_CLIENT_SECRET, "+
					"not sending the partner to re-provision", resp.status, resp.body)
			}
			if !strings.Contains(logs.String(), `"message":"oauth_client_refused"`) || strings.Contains(logs.String(), clientSecret) ||
				strings.Contains(logs.String(), code) {
				t.Fatalf("log: %s; want oauth_client_refused, without the client secret or the code", logs.String())
			}
			refuse.Store(false)
			if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code)); resp.status != http.StatusOK {
				t.Fatalf("the same PUT once Heroku takes the client: %d %s; want 200", resp.status, resp.body)
			}
		})
	}
}

// grantBehindFront is a fixture whose Heroku client reaches its fake
// through front, which answers a request itself (answered) or leaves it to
// the fake, with add-on inst-1 added; it returns the fixture and inst-1's
// grant code, not yet exchanged.
func grantBehindFront(t *testing.T, front func(w http.ResponseWriter, r *http.Request, fake *herokufake.Fake) (answered bool),
	opts ...func(*web.Params)) (*fixture, string) {
	t.Helper()
	var fake atomic.Pointer[herokufake.Fake]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !front(w, r, fake.Load()) {
			fake.Load().ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	f := newFixture(t, func(p *web.Params) {
		hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
			heroku.WithOAuthClientSecret(secret.New(clientSecret)), heroku.WithTokenStore(p.Store))
		if err != nil {
			t.Fatal(err)
		}
		p.Registry = registry.New(p.Store, hc, registry.WithLocalStandIn(logplex.LocalStandIn(srv.URL)))
		for _, o := range opts {
			o(p)
		}
	})
	fake.Store(f.fake)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	return f, f.fake.GrantCode("inst-1")
}
