package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// "Sign out" answers its POST with a redirect to a page that says the
// customer is signed out (Post/Redirect/Get): reloading that page shows
// it again, where reloading the answer to the POST asked the browser to
// send the form again and then said "Your session has ended or you are
// not signed in." The sign-out still removes both cookies and ends the
// session, and the page does not tell a customer signed in that they are
// signed out.
func TestSignOutRedirectsToAPageThatSaysSo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.userLogin("inst-1", "user-1")
	page := f.get("/dashboard", session).body
	out := f.postForm("/dashboard/logout", formFields(t, page, "/dashboard/logout"), session)
	if out.status != http.StatusSeeOther || out.header.Get("Location") != "/dashboard/signed-out" {
		t.Fatalf("sign-out = %d to %q; want 303 to /dashboard/signed-out:\n%s", out.status, out.header.Get("Location"), out.body)
	}
	for _, name := range []string{"rekey_session", "heroku-nav-data"} {
		if c := cookieNamed(out.header, name); c == nil || c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("sign-out: %s cookie %+v, want it removed", name, c)
		}
	}
	signedOut := func(what string, cookies ...*http.Cookie) {
		t.Helper()
		r := f.get("/dashboard/signed-out", cookies...)
		if r.status != http.StatusOK || !strings.Contains(r.body, "<h1>Signed out</h1>") ||
			!strings.Contains(r.body, "You are signed out of the credentials dashboard.") {
			t.Errorf("%s: %d, want 200 saying the customer is signed out:\n%s", what, r.status, r.body)
		}
		if !strings.Contains(r.body, `>my-app</a>`) {
			t.Errorf("%s: the navigation header does not name the app signed out of:\n%s", what, r.body)
		}
		if strings.Contains(r.body, `action="/dashboard/logout"`) {
			t.Errorf("%s: the signed-out page offers to sign out", what)
		}
	}
	names := cookieNamed(out.header, "rekey_signed_out")
	if names == nil {
		t.Fatal("sign-out kept no names for the signed-out page")
	}
	signedOut("the page the sign-out leads to", names)
	signedOut("the page reloaded", names)
	// A browser that kept the cookie (the answer removing it was lost).
	signedOut("the page with the ended session's cookie", session, names)
	if r := f.get("/dashboard", session); r.status != http.StatusUnauthorized {
		t.Errorf("the ended session's cookie on the dashboard = %d, want 401", r.status)
	}
	// Signed in again: a link to the page leads to the dashboard.
	again := f.userLogin("inst-1", "user-1")
	if r := f.get("/dashboard/signed-out", again); r.status != http.StatusSeeOther || r.header.Get("Location") != "/dashboard" {
		t.Errorf("the signed-out page for a customer signed in = %d to %q, want 303 to /dashboard", r.status, r.header.Get("Location"))
	}
}

// A double-click on "Sign out" posts the form twice, and the browser shows
// the answer to the second, whose cookie is the session the first just
// ended; a second tab's "Sign out" comes once the cookie is gone. Both
// lead to the signed-out page, where they answered "Your session has
// ended or you are not signed in." The second answer removes the ended
// session's cookie too, and keeps the names for the page. A live
// session's sign-out still needs its form's token: a forged post that
// carries the cookie (a browser without SameSite) is refused and signs
// nothing out, and one without it (SameSite=Lax keeps it from a
// cross-site post) changes nothing and sets no cookie.
func TestASecondSignOutLeadsToTheSignedOutPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.userLogin("inst-1", "user-1")
	form := formFields(t, f.get("/dashboard", session).body, "/dashboard/logout")
	if out := f.postForm("/dashboard/logout", form, session); out.status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d, want 303:\n%s", out.status, out.body)
	}
	toSignedOut := func(what string, r reply) {
		t.Helper()
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/dashboard/signed-out" {
			t.Errorf("%s = %d to %q; want 303 to /dashboard/signed-out:\n%s", what, r.status, r.header.Get("Location"), r.body)
		}
	}
	second := f.postForm("/dashboard/logout", form, session)
	toSignedOut("the second sign-out, with the ended session's cookie", second)
	if c := cookieNamed(second.header, "rekey_session"); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("the second sign-out: rekey_session cookie %+v, want it removed", c)
	}
	if names := cookieNamed(second.header, "rekey_signed_out"); names == nil ||
		!strings.Contains(f.get("/dashboard/signed-out", names).body, `>my-app</a>`) {
		t.Errorf("the second sign-out kept no names for the signed-out page: %+v", names)
	}
	another := f.postForm("/dashboard/logout", form)
	toSignedOut("a sign-out without a session cookie", another)
	if c := another.header.Values("Set-Cookie"); len(c) > 0 {
		t.Errorf("a sign-out without a session cookie sets cookies: %q", c)
	}

	live := f.userLogin("inst-1", "user-1")
	for _, forged := range []url.Values{{}, {"csrf_token": {"0123456789abcdef0123456789abcdef.4102444800.00"}}} {
		if r := f.postForm("/dashboard/logout", forged, live); r.status != http.StatusForbidden {
			t.Errorf("a sign-out of a live session with csrf_token %q = %d, want 403", forged.Get("csrf_token"), r.status)
		}
	}
	crossSite := f.postForm("/dashboard/logout", url.Values{})
	toSignedOut("a cross-site sign-out, which carries no cookie", crossSite)
	if c := crossSite.header.Values("Set-Cookie"); len(c) > 0 {
		t.Errorf("a cross-site sign-out sets cookies: %q", c)
	}
	if r := f.get("/dashboard/signed-out", live); r.status != http.StatusSeeOther || r.header.Get("Location") != "/dashboard" {
		t.Errorf("the signed-out page for the live session = %d to %q, want 303 to /dashboard", r.status, r.header.Get("Location"))
	}
	if r := f.get("/dashboard", live); r.status != http.StatusOK {
		t.Errorf("the live session after forged sign-outs opens the dashboard with %d, want 200", r.status)
	}
}
