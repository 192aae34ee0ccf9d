package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/web"
)

// TestPlainHTTPThroughHerokusRouterIsNotServed plays a client that reaches
// the dyno over plain http through Heroku's router (X-Forwarded-Proto:
// http): a GET or HEAD is redirected to the same https URL; a request that
// would change something is refused without being handled, saying to use
// https, so the token it sent in the clear is not honoured either.
func TestPlainHTTPThroughHerokusRouterIsNotServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	viaHTTP := func(auth string) http.Header {
		return http.Header{"X-Forwarded-Proto": {"http"}, "Authorization": {auth}, "Content-Type": {"application/json"}}
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r := f.do(m, "/api/v1/instances/inst-1?x=1", nil, viaHTTP("Bearer "+apiToken))
		want := "https://" + strings.TrimPrefix(f.srv.URL, "http://") + "/api/v1/instances/inst-1?x=1"
		if r.status != http.StatusMovedPermanently && r.status != http.StatusPermanentRedirect || r.header.Get("Location") != want {
			t.Errorf("%s over plain http: got %d Location %q, want 301 or 308 to %s", m, r.status, r.header.Get("Location"), want)
		}
	}
	r := f.do(http.MethodPost, "/api/v1/rotations", strings.NewReader(`{"instance_ids":["inst-1"]}`), viaHTTP("Bearer "+apiToken))
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "https://") {
		t.Errorf("POST over plain http: got %d %.200s, want 403 saying to use https://", r.status, r.body)
	}
	if in, err := f.st.Instance(t.Context(), "inst-1"); err != nil || in.InFlight != "" {
		t.Errorf("a rotation was requested over plain http: %+v, %v", in, err)
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
