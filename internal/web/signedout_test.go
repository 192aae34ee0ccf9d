package web_test

import (
	"net/http"
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
