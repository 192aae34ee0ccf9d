package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

func TestLogoutEndsTheSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	token := f.csrf(session)
	if resp := f.postForm("/dashboard/logout", url.Values{}, session); resp.status != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: got %d, want 403", resp.status)
	}
	if resp := f.get("/dashboard", session); resp.status != http.StatusOK {
		t.Fatalf("a refused logout ended the session: got %d", resp.status)
	}
	resp := f.postForm("/dashboard/logout", url.Values{"csrf_token": {token}}, session)
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/dashboard/signed-out" {
		t.Fatalf("logout: got %d to %q: %s", resp.status, resp.header.Get("Location"), resp.body)
	}
	for _, name := range []string{"rekey_session", "heroku-nav-data"} {
		if c := cookieNamed(resp.header, name); c == nil || c.MaxAge >= 0 || c.Value != "" || !c.Secure {
			t.Errorf("logout: got %s cookie %+v, want it removed (Max-Age<0, empty, Secure)", name, c)
		}
	}
	// The browser drops the cookie; a copy of it must not work either.
	if resp := f.get("/dashboard", session); resp.status != http.StatusUnauthorized {
		t.Errorf("the old session cookie after logout: got %d, want 401", resp.status)
	}
	if resp := f.get("/dashboard/status", session); resp.status != http.StatusUnauthorized {
		t.Errorf("the old session cookie on /dashboard/status after logout: got %d, want 401", resp.status)
	}
	if resp := f.get("/dashboard", f.login("inst-1")); resp.status != http.StatusOK {
		t.Errorf("a new sign-in after logout: got %d, want 200", resp.status)
	}
}

func TestHSTSOnlyOverHTTPS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	for _, path := range []string{"/healthz", "/dashboard", "/sso/login"} {
		plain := f.do(http.MethodGet, path, nil, http.Header{"Cookie": {session.Name + "=" + session.Value}})
		if got := plain.header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("GET %s over plain http: got Strict-Transport-Security %q, want none", path, got)
		}
		tls := f.do(http.MethodGet, path, nil, http.Header{"Cookie": {session.Name + "=" + session.Value},
			"X-Forwarded-Proto": {"https"}})
		if got := tls.header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("GET %s behind Heroku's router over https: got Strict-Transport-Security %q, want max-age=31536000", path, got)
		}
	}
}

func TestSSOFormIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	form := f.ssoForm("inst-1")
	if resp := f.postForm("/sso/login", form); resp.status != http.StatusSeeOther {
		t.Fatalf("first use: got %d, want 303", resp.status)
	}
	replay := f.postForm("/sso/login", form)
	if replay.status != http.StatusForbidden || !strings.Contains(replay.body, "This sign-in link was already used") ||
		cookieNamed(replay.header, "rekey_session") != nil {
		t.Errorf("replay: got %d, session %v: %s; want 403 saying the link was already used, and no session",
			replay.status, cookieNamed(replay.header, "rekey_session") != nil, replay.body)
	}
	// A second click's replay leads back to the dashboard the first opened.
	if !strings.Contains(replay.body, `<a href="/dashboard">Back to the dashboard</a>`) || !strings.Contains(replay.body, "a second click") {
		t.Errorf("replay page offers no way to the dashboard a first click opened: %s", replay.body)
	}

	// A user-scoped sign-in spends its resource token too: the same form
	// without the user-scoped token is a replay as well.
	scoped := f.ssoForm("inst-1")
	scoped.Set("user_scoped_resource_token", sha256Hex("inst-1:"+ssoSalt+":"+scoped.Get("timestamp")+":user-1:dev@example.com"))
	if resp := f.postForm("/sso/login", scoped); resp.status != http.StatusSeeOther {
		t.Fatalf("user-scoped sign-in: got %d, want 303: %s", resp.status, resp.body)
	}
	scoped.Del("user_scoped_resource_token")
	if resp := f.postForm("/sso/login", scoped); resp.status != http.StatusForbidden {
		t.Errorf("user-scoped form replayed with its resource token only: got %d, want 403", resp.status)
	}

	// The marks hold hashes, never the tokens, and expire a minute after the
	// form would, for a process whose clock is a little behind.
	keys, err := f.r.Client.Keys(context.Background(), "rekey:sso_used:*").Result()
	if err != nil || len(keys) != 3 {
		t.Fatalf("got spent-token keys %v (%v), want 3", keys, err)
	}
	for _, k := range keys {
		for _, tok := range []string{form.Get("resource_token"), scoped.Get("resource_token")} {
			if strings.Contains(k, tok) {
				t.Errorf("key %s holds an SSO token in clear", k)
			}
		}
		ttl := f.r.Client.PTTL(context.Background(), k).Val()
		if ttl <= 5*time.Minute || ttl > 6*time.Minute {
			t.Errorf("key %s expires in %v, want a minute past the form's 5 minutes", k, ttl)
		}
	}
}

// TestAFormUsedWithoutItsUserTokenIsSpent: a form Heroku sent with a
// user-scoped token, posted first without it (a copy from a browser's
// history or a proxy's log, stripped), signs in once; the form as sent is
// then a replay too. Two people of one team signing in within the same
// second share the resource token, each with a user-scoped token of their
// own: both get in.
func TestAFormUsedWithoutItsUserTokenIsSpent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	userToken := func(form url.Values, user, email string) string {
		return sha256Hex("inst-1:" + ssoSalt + ":" + form.Get("timestamp") + ":" + user + ":" + email)
	}

	form := f.ssoForm("inst-1")
	if resp := f.postForm("/sso/login", form); resp.status != http.StatusSeeOther {
		t.Fatalf("the form without its user-scoped token: got %d, want 303", resp.status)
	}
	form.Set("user_scoped_resource_token", userToken(form, "user-1", "dev@example.com"))
	if resp := f.postForm("/sso/login", form); resp.status != http.StatusForbidden ||
		cookieNamed(resp.header, "rekey_session") != nil {
		t.Errorf("the same form with its user-scoped token after: got %d, session %v; want 403 and no session",
			resp.status, cookieNamed(resp.header, "rekey_session") != nil)
	}

	first := f.ssoForm("inst-1")
	second := url.Values{}
	for k, v := range first {
		second[k] = v
	}
	second.Set("user_id", "user-2")
	second.Set("email", "ops@example.com")
	first.Set("user_scoped_resource_token", userToken(first, "user-1", "dev@example.com"))
	second.Set("user_scoped_resource_token", userToken(second, "user-2", "ops@example.com"))
	for i, form := range []url.Values{first, second} {
		if resp := f.postForm("/sso/login", form); resp.status != http.StatusSeeOther {
			t.Errorf("user %d's sign-in in the same second: got %d, want 303: %s", i+1, resp.status, resp.body)
		}
	}
	if resp := f.postForm("/sso/login", second); resp.status != http.StatusForbidden {
		t.Errorf("user 2's form replayed: got %d, want 403", resp.status)
	}
}

// navData is Heroku's nav-data for the fixture's sign-ins.
func navData(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }

func TestNavHeaderFromNavData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, app, nav string
		want, never    []string
	}{
		{name: "Heroku's nav-data", app: "my-app", nav: navData(`{"addon":"Rekey Postgres","appname":"my-app","addons":[{"slug":"rekey","name":"Rekey Postgres","current":true}]}`),
			want: []string{`<a id="nav-app" href="https://dashboard.heroku.com/apps/my-app/resources">my-app</a>`,
				`<span id="nav-addon">Rekey Postgres</span>`, `The add-on <strong>Rekey Postgres</strong> on the app <strong>my-app</strong>.`,
				`<title>Credentials · Rekey Postgres · my-app</title>`, `id="logout"`}},
		{name: "app from nav-data when the form has none", nav: navData(`{"addon":"Rekey","appname":"other-app"}`),
			want: []string{`href="https://dashboard.heroku.com/apps/other-app/resources"`, `<span id="nav-addon">Rekey</span>`}},
		{name: "no nav-data", app: "my-app", want: []string{`href="https://dashboard.heroku.com/apps/my-app/resources"`, `This add-on on the app <strong>my-app</strong>.`},
			never: []string{`id="nav-addon"`}},
		{name: "nav-data that is not base64 JSON", app: "my-app", nav: "bmF2LWRhdGE", never: []string{`id="nav-addon"`}},
		{name: "markup in the names", app: "<b>x</b>", nav: navData(`{"addon":"<script>alert(1)</script>"}`),
			want:  []string{`<span id="nav-app">&lt;b&gt;x&lt;/b&gt;</span>`, `&lt;script&gt;alert(1)&lt;/script&gt;`},
			never: []string{"<script>alert", "/apps/%3Cb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.register("inst-1", "cred-0")
			form := f.ssoForm("inst-1")
			form.Set("app", tt.app)
			form.Set("nav-data", tt.nav)
			resp := f.postForm("/sso/login", form)
			session := cookieNamed(resp.header, "rekey_session")
			if session == nil {
				t.Fatalf("sign-in: got %d, no session", resp.status)
			}
			page := f.get("/dashboard", session).body
			if !strings.Contains(page, `<header id="heroku-nav" class="heroku-nav">`) ||
				!strings.Contains(page, `<a class="heroku-home" href="https://dashboard.heroku.com/">Heroku</a>`) {
				t.Errorf("dashboard lacks Heroku's navigation header")
			}
			for _, want := range tt.want {
				if !strings.Contains(page, want) {
					t.Errorf("dashboard lacks %q", want)
				}
			}
			for _, never := range tt.never {
				if strings.Contains(page, never) {
					t.Errorf("dashboard shows %q", never)
				}
			}
		})
	}
}

// TestOversizedNavDataSetsNoCookie: a sign-in form's nav-data of tens of
// kilobytes (the form allows 64 KiB) is not set as the heroku-nav-data
// cookie, which browsers would drop anyway; the sign-in still works, and a
// nav-data of Heroku's size is set as sent.
func TestOversizedNavDataSetsNoCookie(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	small := navData(`{"addon":"Rekey","appname":"my-app"}`)
	for _, tt := range []struct {
		nav       string
		wantSaved bool
	}{{strings.Repeat("A", 40<<10), false}, {small, true}} {
		form := f.ssoForm("inst-1")
		form.Set("nav-data", tt.nav)
		resp := f.postForm("/sso/login", form)
		if cookieNamed(resp.header, "rekey_session") == nil {
			t.Fatalf("nav-data of %d bytes: sign-in got %d, no session", len(tt.nav), resp.status)
		}
		c := cookieNamed(resp.header, "heroku-nav-data")
		if got := c != nil && c.Value == tt.nav; got != tt.wantSaved {
			t.Errorf("nav-data of %d bytes: set as the cookie %v, want %v", len(tt.nav), got, tt.wantSaved)
		}
	}
}

// TestNavDataThatIsNotBase64SetsNoCookie: nav-data is not covered by the
// sign-in's token, so the customer's browser may post any text in it. One
// with bytes no cookie value may hold ('"', ';', '\\', a space, a control)
// is not set as the heroku-nav-data cookie: Go's net/http wrote a line of
// its own, not JSON, to the process's log for each such sign-in and set
// what was left of it. Heroku's nav-data, base64, is set as sent. Not
// parallel: it reads the standard logger's output.
func TestNavDataThatIsNotBase64SetsNoCookie(t *testing.T) {
	var stdlog syncBuffer
	log.SetOutput(&stdlog)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	for _, tt := range []struct {
		nav       string
		wantSaved bool
	}{
		{"x\"; Path=/; Domain=evil.example \\ \x1b[2J", false},
		{"eyJhcHBuYW1lIjoibXktYXBwIn0 trailing", false},
		{base64.StdEncoding.EncodeToString([]byte(`{"addon":"Rekey","appname":"my-app","x":"\u00ff\u00fe"}`)), true},
		{navData(`{"addon":"Rekey","appname":"my-app"}`), true},
	} {
		form := f.ssoForm("inst-1")
		form.Set("nav-data", tt.nav)
		resp := f.postForm("/sso/login", form)
		if cookieNamed(resp.header, "rekey_session") == nil {
			t.Fatalf("nav-data %q: sign-in got %d, no session", tt.nav, resp.status)
		}
		c := cookieNamed(resp.header, "heroku-nav-data")
		if c != nil && c.Value != tt.nav {
			t.Errorf("nav-data %q: set as the cookie %q", tt.nav, c.Value)
		}
		if got := c != nil; got != tt.wantSaved {
			t.Errorf("nav-data %q: set as the cookie %v, want %v", tt.nav, got, tt.wantSaved)
		}
	}
	if stdlog.String() != "" {
		t.Errorf("the sign-ins wrote to the standard logger:\n%s", stdlog.String())
	}
}

// TestALongRequestIDIsClippedInTheLog: anyone may send an X-Request-Id up to
// the header limit, and an unauthenticated request is logged too: the line
// quotes at most 200 bytes of it.
func TestALongRequestIDIsClippedInTheLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	f := newFixture(t, func(p *web.Params) { p.Logger = zerolog.New(&logs) })
	id := strings.Repeat("r", 100<<10)
	f.do(http.MethodGet, "/api/v1/instances/inst-1", nil, http.Header{"X-Request-Id": {id}})
	var line struct {
		RequestID string `json:"request_id"`
		Status    int
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, `"message":"request"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line.Status != http.StatusUnauthorized || len(line.RequestID) != 203 || !strings.HasSuffix(line.RequestID, "...") {
		t.Errorf("got a request line with status %d and a request id of %d bytes, want 401 and 200 bytes and \"...\"",
			line.Status, len(line.RequestID))
	}
}

func TestDashboardGraceWording(t *testing.T) {
	t.Parallel()
	tests := []struct {
		grace time.Duration
		want  string
		never string
	}{
		{90 * time.Second, "keeps working for 1 minute 30 seconds, then it is revoked", "for 1 minute,"},
		{2 * time.Hour, "keeps working for 2 hours, then it is revoked", "minute"},
		{45 * time.Second, "keeps working for 45 seconds, then it is revoked", "minute"},
		{90 * time.Minute, "keeps working for 1 hour 30 minutes, then it is revoked", "90 minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.grace.String(), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(p *web.Params) {
				p.Grace = tt.grace
				p.CustomerLimits.OnePerGrace = true
			})
			f.register("inst-1", "cred-0")
			page := f.get("/dashboard", f.login("inst-1")).body
			help := between(page, `<p id="rotate-help">`, "</p>")
			if !strings.Contains(help, tt.want) || strings.Contains(help, tt.never) {
				t.Errorf("grace %v: rotate help reads %q, want %q", tt.grace, help, tt.want)
			}
			rules := between(page, `<p id="rotate-rules">`, "</p>")
			if want := "once the old credential is revoked, " + strings.TrimSuffix(strings.TrimPrefix(tt.want, "keeps working for "), ", then it is revoked") + " later."; !strings.Contains(rules, want) {
				t.Errorf("grace %v: rules read %q, want %q", tt.grace, rules, want)
			}
		})
	}
}

// between returns the text of s from after start up to end, or "".
func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	in, _, _ := strings.Cut(rest, end)
	return in
}

func TestDashboardNamesConfigVarsAndLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(p *web.Params) {
		p.CustomerLimits.PerDay = 3
		p.CustomerLimits.OnePerGrace = true
	})
	if err := f.st.PutInstance(context.Background(), v1Instance("inst-1")); err != nil {
		t.Fatal(err)
	}
	f.register("inst-2", "cred-0")
	reg := v1Instance("inst-3")
	reg.ConfigVars = []string{"MYADDON_URL", "MYADDON_PASSWORD"}
	if err := f.st.PutInstance(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"inst-2": `A rotation changes this config var: <code>MYADDON_URL</code>.`,
		"inst-3": `A rotation changes these config vars: <code>MYADDON_URL</code>, <code>MYADDON_PASSWORD</code>.`,
	} {
		page := f.get("/dashboard", f.login(id)).body
		if !strings.Contains(page, want) {
			t.Errorf("%s: dashboard lacks %q", id, want)
		}
		const rules = "You can rotate up to 3 times in any 24 hours. After a rotation, you can rotate again once the old credential is revoked, 2 hours later."
		if !strings.Contains(page, `<p id="rotate-rules">`+rules+`</p>`) {
			t.Errorf("%s: dashboard lacks the rules %q", id, rules)
		}
	}
}

// TestDashboardGraceKeepsToTheCeiling: an instance registered with a grace
// longer than today's ceiling (REKEY_MAX_GRACE lowered since) has its old
// credentials revoked at the ceiling, which workers lower it to. The page
// must not promise the customer the longer grace.
func TestDashboardGraceKeepsToTheCeiling(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(p *web.Params) {
		p.MaxGrace = 168 * time.Hour
		p.CustomerLimits.OnePerGrace = true
	})
	err := f.st.PutInstance(context.Background(), store.Registration{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0", Grace: 200 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	page := f.get("/dashboard", f.login("inst-1")).body
	help := between(page, `<p id="rotate-help">`, "</p>")
	if !strings.Contains(help, "keeps working for 168 hours, then it is revoked") {
		t.Errorf("rotate help reads %q, want the ceiling's 168 hours", help)
	}
	if rules := between(page, `<p id="rotate-rules">`, "</p>"); !strings.Contains(rules, "revoked, 168 hours later.") {
		t.Errorf("rules read %q, want the ceiling's 168 hours", rules)
	}
}

// TestDashboardFormOverTheLimitIs413: a dashboard form larger than the
// dashboard takes is refused as too large (413), with its own page, not
// as an expired form (403) whose advice, reload and try again, cannot
// help; nothing is requested.
func TestDashboardFormOverTheLimitIs413(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	form := url.Values{"csrf_token": {f.csrf(session)}, "padding": {strings.Repeat("x", 100<<10)}}
	resp := f.postForm("/dashboard/rotate", form, session)
	if resp.status != http.StatusRequestEntityTooLarge || !strings.Contains(resp.body, "Form too large") {
		t.Errorf("a 100 KiB form: got %d, want 413 saying the form is too large: %.300s", resp.status, resp.body)
	}
	if in, err := f.st.Instance(context.Background(), "inst-1"); err != nil || in.InFlight != "" {
		t.Errorf("a refused form requested a rotation: %+v %v", in, err)
	}
}

// A dashboard session outlives neither a DELETE of its add-on nor, above
// all, the registration of the same id that may follow (a partner that
// reuses a V1 id for another customer): the old cookie then opens nothing,
// and a new sign-in opens the add-on as registered again. So does a
// session signed in while the add-on was deprovisioned (a form Heroku
// signed just before the DELETE is good for minutes): it shows the add-on
// deprovisioned, but not the one registered again after it.
func TestSessionEndsWithADeleteOfItsAddon(t *testing.T) {
	for _, afterDelete := range []bool{false, true} {
		name := map[bool]string{false: "signed in before the DELETE", true: "signed in after it"}[afterDelete]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.register("inst-1", "cred-0")
			var old *http.Cookie
			if !afterDelete {
				old = f.login("inst-1")
			}
			if r := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); r.status != http.StatusOK {
				t.Fatalf("DELETE = %d %s", r.status, r.body)
			}
			if afterDelete {
				old = f.login("inst-1")
			}
			if r := f.get("/dashboard", old); r.status != http.StatusOK || !strings.Contains(r.body, "deprovisioned") {
				t.Errorf("GET /dashboard while deprovisioned = %d, want 200 saying so:\n%s", r.status, r.body)
			}
			form := url.Values{"csrf_token": {f.csrf(old)}}
			f.register("inst-1", "cred-9")
			if r := f.get("/dashboard", old); r.status != http.StatusUnauthorized {
				t.Errorf("GET /dashboard with the old session = %d, want 401", r.status)
			}
			if r := f.postForm("/dashboard/rotate", form, old); r.status != http.StatusUnauthorized {
				t.Errorf("POST /dashboard/rotate with the old session = %d, want 401", r.status)
			}
			if in, _ := f.st.Instance(context.Background(), "inst-1"); in.InFlight != "" {
				t.Errorf("the old session started rotation %s of the add-on registered again", in.InFlight)
			}
			f.clock.Advance(time.Minute) // Heroku signs the next form after the registration
			if r := f.get("/dashboard", f.login("inst-1")); r.status != http.StatusOK {
				t.Errorf("GET /dashboard after a new sign-in = %d, want 200", r.status)
			}
			// The add-on registered again rotates and is deprovisioned in
			// turn: the old session does not open it either, nor revoke
			// its old credential inside the grace.
			f.rotate("inst-1", "rot-9", "cred-10", 2*time.Hour)
			if r := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); r.status != http.StatusOK {
				t.Fatalf("second DELETE = %d %s", r.status, r.body)
			}
			if r := f.get("/dashboard", old); r.status != http.StatusUnauthorized {
				t.Errorf("GET /dashboard with the old session, the next add-on deprovisioned = %d, want 401", r.status)
			}
			form.Set("credential_id", "cred-9")
			form.Set("confirm", "yes")
			r := f.postForm("/dashboard/revoke-now", form, old)
			if c, _ := f.st.Credential(context.Background(), "inst-1", "cred-9"); r.status != http.StatusUnauthorized || !c.ExpeditedAt.IsZero() {
				t.Errorf("revoke-now of the next add-on's credential with the old session = %d, expedited at %v; want 401, nothing",
					r.status, c.ExpeditedAt)
			}
		})
	}
}

// A sign-in form Heroku signed before the add-on's DELETE (kept unposted:
// a saved page) does not open the add-on registered again under the same
// id, maybe another customer's; a form signed since does.
func TestAFormSignedBeforeTheRegistrationAgainSignsNothingIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	kept := signedV3("inst-1", itoa(f.clock.Now().Unix()-60))
	if r := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	f.clock.Advance(10 * time.Second)
	f.register("inst-1", "cred-9")
	f.rotate("inst-1", "rot-9", "cred-10", 2*time.Hour)
	f.clock.Advance(time.Minute)
	r := f.postForm("/sso/login", kept)
	if r.status != http.StatusForbidden || cookieNamed(r.header, "rekey_session") != nil {
		t.Errorf("a form signed before the DELETE, posted after the registration again = %d, want 403 and no session", r.status)
	}
	if r := f.get("/dashboard", f.login("inst-1")); r.status != http.StatusOK || !strings.Contains(r.body, "cred-10") {
		t.Errorf("GET /dashboard after a sign-in from a form signed now = %d, want 200 with the add-on", r.status)
	}
}

// TestALongPathIsClippedInTheLog: anyone may request a path up to the
// header limit, and an unauthenticated request is logged too. Each control
// byte sent percent-encoded ("%01", three bytes) is six in the JSON line
// ("\u0001"), so a path within Heroku's 8 KB request line made a line past
// what logplex keeps whole (10 KB), cut into lines that are not JSON. The
// line quotes at most 200 bytes of the path, and of the method, which
// may be as long.
func TestALongPathIsClippedInTheLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	f := newFixture(t, func(p *web.Params) { p.Logger = zerolog.New(&logs) })
	f.do(http.MethodGet, "/api/v1/instances/"+strings.Repeat("%01", 2700), nil, nil)
	f.do(strings.Repeat("M", 10<<10), "/api/v1/instances/inst-1", nil, nil)
	type request struct {
		Method, Path string
		Status       int
	}
	var lines []request
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, `"message":"request"`) {
			if len(l) > 2000 {
				t.Errorf("a request line is %d bytes long", len(l))
			}
			var r request
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, r)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("got %d request lines, want 2", len(lines))
	}
	if p := lines[0].Path; lines[0].Status != http.StatusUnauthorized || len(p) != 203 ||
		!strings.HasPrefix(p, "/api/v1/instances/\x01") || !strings.HasSuffix(p, "...") {
		t.Errorf("got a request line with status %d and a path of %d bytes, want 401 and 200 bytes and \"...\"",
			lines[0].Status, len(p))
	}
	if m := lines[1].Method; len(m) != 203 || !strings.HasSuffix(m, "...") {
		t.Errorf("got a request line with a method of %d bytes, want 200 bytes and \"...\"", len(m))
	}
}
