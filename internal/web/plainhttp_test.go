package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/web"
)

// TestPlainHTTPThroughHerokusRouterIsNotServed plays clients that reach
// the dyno over plain http through Heroku's router (X-Forwarded-Proto:
// http): a browser's first GET or HEAD, without credentials, is redirected
// to the same https URL; the API, and any request that sent a credential
// in the clear, is refused without being handled, saying to use https
// (a redirect would be followed, and the token sent in the clear again
// with every request); the health check is served.
func TestPlainHTTPThroughHerokusRouterIsNotServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	viaHTTP := func(auth string) http.Header {
		h := http.Header{"X-Forwarded-Proto": {"http"}, "Content-Type": {"application/json"}}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		return h
	}
	host := strings.TrimPrefix(f.srv.URL, "http://")
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r := f.do(m, "/monitoring/?x=1", nil, viaHTTP(""))
		if want := "https://" + host + "/monitoring/?x=1"; r.status != http.StatusMovedPermanently || r.header.Get("Location") != want {
			t.Errorf("%s /monitoring/ over plain http: got %d Location %q, want 301 to %s", m, r.status, r.header.Get("Location"), want)
		}
	}
	for _, tc := range []struct{ method, path, auth string }{
		{http.MethodGet, "/api/v1/instances/inst-1", "Bearer " + apiToken},
		{http.MethodGet, "/api/v1/instances/inst-1", ""},
		{http.MethodPost, "/api/v1/rotations", "Bearer " + apiToken},
		// Paths that clean to the API's (a base URL ending in a slash) are
		// the API's too: refused in JSON, never redirected.
		{http.MethodGet, "/api", ""},
		{http.MethodGet, "//api/v1/instances/inst-1", ""},
		{http.MethodGet, "//api/v1/instances/inst-1", "Bearer " + apiToken},
		{http.MethodGet, "/metrics", basic("ops", dashPassword)},
		{http.MethodGet, "/monitoring/", basic("ops", dashPassword)},
	} {
		var body io.Reader
		if tc.method == http.MethodPost {
			body = strings.NewReader(`{"instance_ids":["inst-1"]}`)
		}
		r := f.do(tc.method, tc.path, body, viaHTTP(tc.auth))
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "https://"+host+tc.path) || r.header.Get("Location") != "" {
			t.Errorf("%s %s over plain http (credential %t): got %d %.200s, want 403 saying to use https", tc.method, tc.path,
				tc.auth != "", r.status, r.body)
		}
		if strings.Contains(tc.path, "api") && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s over plain http: answered %q, want the API's JSON error", tc.method, tc.path, r.header.Get("Content-Type"))
		}
	}
	if in, err := f.st.Instance(t.Context(), "inst-1"); err != nil || in.InFlight != "" {
		t.Errorf("a rotation was requested over plain http: %+v, %v", in, err)
	}
	if r := f.do(http.MethodGet, "/healthz", nil, viaHTTP("")); r.status != http.StatusOK {
		t.Errorf("GET /healthz over plain http: got %d, want 200", r.status)
	}
	// Over https through the router: served, with HSTS.
	h := viaHTTP("Bearer " + apiToken)
	h.Set("X-Forwarded-Proto", "https")
	if r := f.do(http.MethodGet, "/api/v1/instances/inst-1", nil, h); r.status != http.StatusOK || r.header.Get("Strict-Transport-Security") == "" {
		t.Errorf("GET over https: got %d with Strict-Transport-Security %q, want 200 with HSTS", r.status, r.header.Get("Strict-Transport-Security"))
	}
}

// TestPlainHTTPWithoutARouterIsServed: rekey dev on this machine, or a
// scrape on a private network, reaches the dyno over plain http with no
// X-Forwarded-Proto, and is served as before, without HSTS.
func TestPlainHTTPWithoutARouterIsServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	if r := f.api(http.MethodGet, "/api/v1/instances/inst-1", ""); r.status != http.StatusOK || r.header.Get("Strict-Transport-Security") != "" {
		t.Errorf("GET: got %d HSTS %q, want 200 without HSTS", r.status, r.header.Get("Strict-Transport-Security"))
	}
	if r := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"]}`); r.status/100 != 2 {
		t.Errorf("POST: got %d %.200s, want it served", r.status, r.body)
	}
	if r := f.do(http.MethodGet, "/metrics", nil, http.Header{"Authorization": {basic("ops", dashPassword)}}); r.status != http.StatusOK {
		t.Errorf("GET /metrics: got %d, want 200", r.status)
	}
}

// TestPlainHTTPIsServedWhenInsecureCookiesSaySo: REKEY_INSECURE_COOKIES
// says plain http is meant, as behind a local proxy without TLS that sets
// X-Forwarded-Proto: http; its requests are served, not redirected.
func TestPlainHTTPIsServedWhenInsecureCookiesSaySo(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(p *web.Params) { p.InsecureCookies = true })
	f.register("inst-1", "cred-0")
	h := http.Header{"X-Forwarded-Proto": {"http"}, "Authorization": {"Bearer " + apiToken}}
	if r := f.do(http.MethodGet, "/api/v1/instances/inst-1", nil, h); r.status != http.StatusOK {
		t.Errorf("GET over plain http with REKEY_INSECURE_COOKIES: got %d %.200s, want 200", r.status, r.body)
	}
}
