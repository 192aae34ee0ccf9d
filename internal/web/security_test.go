package web_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// openRoutes are the only routes anyone may call without credentials:
// the health check, the page a sign-out leads to, which holds fixed
// sentences, and the SSO login, which checks Heroku's token itself.
var openRoutes = map[string]string{"GET /healthz": "open", "GET /dashboard/signed-out": "open", "POST /sso/login": "sso"}

// concrete turns a route pattern into a method and a path to request.
func concrete(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodGet, pattern
	}
	path = strings.NewReplacer("{addon_id}", "inst-1", "{batch_id}", "bat-1").Replace(path)
	if strings.HasSuffix(path, "/") {
		path += "v1/queues"
	}
	return method, path
}

func TestEveryRouteHasAnAccessRule(t *testing.T) {
	t.Parallel()
	for _, rt := range web.Routes() {
		want, open := openRoutes[rt.Pattern]
		if open && rt.Access != want {
			t.Errorf("%s: got access %s, want %s", rt.Pattern, rt.Access, want)
		}
		if !open && (rt.Access == "open" || rt.Access == "sso") {
			t.Errorf("%s: got access %s, want credentials required", rt.Pattern, rt.Access)
		}
	}
}

func TestRoutesRefuseUnauthenticatedRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	forged := &http.Cookie{Name: "rekey_session", Value: forgeSession("inst-1")}
	attempts := []struct {
		name   string
		query  string
		header http.Header
		cookie *http.Cookie
	}{
		{name: "no credentials"},
		{name: "wrong bearer token", header: http.Header{"Authorization": {"Bearer not-the-token"}}},
		{name: "wrong basic password", header: http.Header{"Authorization": {basic("ops", "wrong")}}},
		{name: "basic with the api token as user", header: http.Header{"Authorization": {basic(apiToken, "")}}},
		{name: "credentials in the query string", query: "?token=" + apiToken + "&access_token=" + apiToken +
			"&api_token=" + apiToken + "&password=" + dashPassword + "&csrf_token=x"},
		{name: "forged session cookie", cookie: forged},
	}
	for _, rt := range web.Routes() {
		if _, open := openRoutes[rt.Pattern]; open {
			continue
		}
		method, path := concrete(rt.Pattern)
		for _, a := range attempts {
			t.Run(rt.Pattern+"/"+a.name, func(t *testing.T) {
				// Each attempt from an address of its own, where the
				// failed sign-ins would otherwise be throttled (429).
				h := http.Header{"Content-Type": {"application/json"}, "X-Forwarded-For": {rt.Pattern + "/" + a.name}}
				for k, v := range a.header {
					h[k] = v
				}
				if a.cookie != nil {
					addCookies(h, []*http.Cookie{a.cookie})
				}
				resp := f.do(method, path+a.query, strings.NewReader(`{"all":true}`), h)
				if rt.Access == "sign-out" {
					// Not signed in is signed out: the page it leads
					// to says so, and nothing is set or changed.
					if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/dashboard/signed-out" ||
						len(resp.header.Values("Set-Cookie")) > 0 {
						t.Errorf("got status %d to %q setting %q, want 303 to /dashboard/signed-out setting nothing: %s",
							resp.status, resp.header.Get("Location"), resp.header.Values("Set-Cookie"), resp.body)
					}
					return
				}
				if resp.status != http.StatusUnauthorized {
					t.Errorf("got status %d, want 401: %s", resp.status, resp.body)
				}
			})
		}
	}
	in, err := f.st.Instance(context.Background(), "inst-1")
	if err != nil || in.InFlight != "" || in.Deprovisioned() {
		t.Errorf("instance changed by refused requests: %+v, %v", in, err)
	}
}

// forgeSession signs a session for id with a key derived from the wrong salt.
func forgeSession(id string) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"i":"` + id + `","e":4102444800,"n":"00"}`))
	return payload + "." + base64.RawURLEncoding.EncodeToString([]byte("not-a-valid-mac-not-a-valid-mac!"))
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestSSOLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	if err := f.st.PutInstance(context.Background(), v1Instance("123")); err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now().Unix()
	ts := func(d time.Duration) string { return itoa(now + int64(d/time.Second)) }
	v3 := func(edit func(url.Values)) url.Values {
		form := f.ssoForm("inst-1")
		if edit != nil {
			edit(form)
		}
		return form
	}
	userToken := func(form url.Values) string {
		return sha256Hex(form.Get("resource_id") + ":" + ssoSalt + ":" + form.Get("timestamp") + ":" +
			form.Get("user_id") + ":" + form.Get("email"))
	}
	tests := []struct {
		name  string
		form  url.Values
		query string
		want  int
	}{
		{name: "v3 resource token", form: v3(nil), want: http.StatusSeeOther},
		{name: "v3 token in upper case hex", form: v3(func(v url.Values) { v.Set("resource_token", strings.ToUpper(v.Get("resource_token"))) }), want: http.StatusSeeOther},
		{name: "v3 user-scoped token", form: v3(func(v url.Values) { v.Set("user_scoped_resource_token", userToken(v)) }), want: http.StatusSeeOther},
		{name: "user-scoped token is preferred and wrong", form: v3(func(v url.Values) { v.Set("user_scoped_resource_token", sha256Hex("x")) }), want: http.StatusForbidden},
		{name: "user-scoped token for another user", form: v3(func(v url.Values) {
			v.Set("user_scoped_resource_token", userToken(v))
			v.Set("email", "someone-else@example.com")
		}), want: http.StatusForbidden},
		{name: "v1 example from Heroku's docs", form: url.Values{"id": {"123"}, "timestamp": {"1267597772"},
			"token": {"bb466eb1d6bc345d11072c3cd25c311f21be130d"}}, want: http.StatusSeeOther},
		{name: "forged token", form: v3(func(v url.Values) { v.Set("resource_token", sha1Hex("forged")) }), want: http.StatusForbidden},
		{name: "token for another instance", form: v3(func(v url.Values) { v.Set("resource_id", "123") }), want: http.StatusForbidden},
		{name: "no token", form: v3(func(v url.Values) { v.Del("resource_token") }), want: http.StatusForbidden},
		{name: "six minutes old", form: signedV3("inst-1", ts(-6*time.Minute)), want: http.StatusForbidden},
		{name: "six minutes ahead", form: signedV3("inst-1", ts(6*time.Minute)), want: http.StatusForbidden},
		{name: "four minutes old", form: signedV3("inst-1", ts(-4*time.Minute)), want: http.StatusSeeOther},
		{name: "timestamp not a number", form: v3(func(v url.Values) { v.Set("timestamp", "soon") }), want: http.StatusForbidden},
		{name: "token in the query string only", form: url.Values{}, query: "?" + v3(nil).Encode(), want: http.StatusForbidden},
		{name: "unknown instance", form: signedV3("inst-unknown", ts(0)), want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.postForm("/sso/login"+tt.query, tt.form)
			if resp.status != tt.want {
				t.Fatalf("got status %d, want %d: %s", resp.status, tt.want, resp.body)
			}
			session := cookieNamed(resp.header, "rekey_session")
			if got, want := session != nil, tt.want == http.StatusSeeOther; got != want {
				t.Errorf("got session cookie %v, want %v", got, want)
			}
			if loc := resp.header.Get("Location"); tt.want == http.StatusSeeOther && loc != "/dashboard" {
				t.Errorf("got Location %q, want /dashboard", loc)
			}
		})
	}
}

func TestSSOLoginGETIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	resp := f.get("/sso/login?" + f.ssoForm("inst-1").Encode())
	if resp.status != http.StatusMethodNotAllowed {
		t.Errorf("got status %d, want 405", resp.status)
	}
	if cookieNamed(resp.header, "rekey_session") != nil {
		t.Error("got a session cookie from a GET")
	}
}

func TestSSOCookies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		forwarded  string
		insecure   bool
		wantSecure bool
	}{
		{name: "plain http, by default", wantSecure: true},
		{name: "behind Heroku's router over https", forwarded: "https", wantSecure: true},
		{name: "plain http with REKEY_INSECURE_COOKIES", insecure: true, wantSecure: false},
		{name: "https with REKEY_INSECURE_COOKIES", forwarded: "https", insecure: true, wantSecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(p *web.Params) { p.InsecureCookies = tt.insecure })
			f.register("inst-1", "cred-0")
			h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			if tt.forwarded != "" {
				h.Set("X-Forwarded-Proto", tt.forwarded)
			}
			resp := f.do(http.MethodPost, "/sso/login", strings.NewReader(f.ssoForm("inst-1").Encode()), h)
			for _, name := range []string{"rekey_session", "heroku-nav-data"} {
				c := cookieNamed(resp.header, name)
				if c == nil {
					t.Fatalf("got no %s cookie", name)
				}
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.wantSecure || c.Path != "/" {
					t.Errorf("%s: got HttpOnly=%v SameSite=%v Secure=%v Path=%q, want HttpOnly, Lax, Secure=%v, /",
						name, c.HttpOnly, c.SameSite, c.Secure, c.Path, tt.wantSecure)
				}
			}
			if got := cookieNamed(resp.header, "heroku-nav-data").Value; got != "bmF2LWRhdGE" {
				t.Errorf("got nav-data cookie %q, want the posted nav-data", got)
			}
		})
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	if resp := f.get("/dashboard", session); resp.status != http.StatusOK {
		t.Fatalf("fresh session: got status %d, want 200", resp.status)
	}
	f.clock.Advance(61 * time.Minute)
	if resp := f.get("/dashboard", session); resp.status != http.StatusUnauthorized {
		t.Errorf("session after 61 minutes: got status %d, want 401", resp.status)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.register("inst-2", "cred-0")
	session := f.login("inst-1")
	otherToken := f.csrf(f.login("inst-2"))
	tests := []struct {
		name  string
		path  string
		token string
	}{
		{name: "rotate without a token", path: "/dashboard/rotate"},
		{name: "rotate with a wrong token", path: "/dashboard/rotate", token: strings.Repeat("ab", 32)},
		{name: "rotate with another session's token", path: "/dashboard/rotate", token: otherToken},
		{name: "revoke-now without a token", path: "/dashboard/revoke-now"},
		{name: "revoke-now with another session's token", path: "/dashboard/revoke-now", token: otherToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"confirm": {"yes"}, "credential_id": {"cred-0"}}
			if tt.token != "" {
				form.Set("csrf_token", tt.token)
			}
			if resp := f.postForm(tt.path, form, session); resp.status != http.StatusForbidden {
				t.Errorf("got status %d, want 403", resp.status)
			}
		})
	}
	for _, id := range []string{"inst-1", "inst-2"} {
		if in, _ := f.st.Instance(context.Background(), id); in.InFlight != "" {
			t.Errorf("%s: got rotation %s in flight after refused forms, want none", id, in.InFlight)
		}
	}
}

func TestNoSecretInResponses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const access, refresh = "HRKU-access-secret-3b7e", "refresh-secret-c0ffee"
	reg := `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0",
		"oauth":{"access_token":"` + access + `","refresh_token":"` + refresh + `","expires_at":"2030-01-01T00:00:00Z"}}`
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", reg); resp.status != http.StatusOK {
		t.Fatalf("register: got status %d, want 200: %s", resp.status, resp.body)
	}
	code, granted := f.registerWithGrant("inst-2")
	f.api(http.MethodPut, "/api/v1/instances/inst-3", `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth":{"access_token":"`+access+`","refresh_token":7}}`)
	f.api(http.MethodPut, "/api/v1/instances/inst-3", `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"`+code+`"}}`)
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	ctx := context.Background()
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-2", RotationID: "rot-2"}); err != nil {
		t.Fatal(err)
	}
	pending := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret)}
	if err := f.st.SavePending(ctx, "inst-2", "rot-2", "cred-9", pending); err != nil {
		t.Fatal(err)
	}
	batch := struct {
		BatchID string `json:"batch_id"`
	}{}
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"drill"}`).json(t, &batch)
	for _, id := range []string{"inst-1", "inst-2"} {
		session := f.login(id)
		f.get("/dashboard", session)
		f.get("/dashboard/status", session)
		f.api(http.MethodGet, "/api/v1/instances/"+id, "")
	}
	f.api(http.MethodGet, "/api/v1/batches/"+batch.BatchID, "")
	for _, p := range []string{"/monitoring/", "/monitoring/api/queues", "/monitoring/api/queues/interactive/pending_tasks",
		"/monitoring/api/redis_info", "/metrics", "/healthz"} {
		f.do(http.MethodGet, p, nil, http.Header{"Authorization": {basic("ops", dashPassword)}})
	}
	secrets := []string{access, refresh, code, granted.AccessToken.Reveal(), granted.RefreshToken.Reveal(), pendingSecret, apiToken, dashPassword, ssoSalt, clientSecret,
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x09", 32)))}
	seen := f.seen.String()
	for _, s := range secrets {
		if strings.Contains(seen, s) {
			t.Errorf("a response contains the secret %q", s)
		}
	}
	if !strings.Contains(seen, "cred-1") || !strings.Contains(seen, "instance_id=inst-1") {
		t.Errorf("the scan saw too little: want credential ids and monitoring payloads in the responses")
	}
}
