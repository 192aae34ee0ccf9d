package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// userLogin signs in to id through SSO as Heroku does since 2026, with a
// user_scoped_resource_token for user, and returns the session cookie.
func (f *fixture) userLogin(id, user string) *http.Cookie {
	f.t.Helper()
	form := f.ssoForm(id)
	email := user + "@example.com"
	form.Set("user_id", user)
	form.Set("email", email)
	form.Set("user_scoped_resource_token", sha256Hex(id+":"+ssoSalt+":"+form.Get("timestamp")+":"+user+":"+email))
	resp := f.postForm("/sso/login", form)
	c := cookieNamed(resp.header, "rekey_session")
	if resp.status != http.StatusSeeOther || c == nil {
		f.t.Fatalf("sso login as %s: got status %d, want 303 with a session: %s", user, resp.status, resp.body)
	}
	return c
}

// A customer has the dashboard of an add-on open in one tab, opens it
// again from Heroku in a second tab (a new sign-in, whose cookie the
// browser keeps), and clicks "Rotate credentials" in the first. The form
// was drawn for the same add-on and the same Heroku user, under a sign-in
// that has not ended: the click rotates, as it would have before the
// second tab. A form drawn for another Heroku user, under a sign-in signed
// out since, or past its own sign-in's hour stays refused, and so is one of
// a sign-in that named no Heroku user, whose page says what happened.
func TestAFormOfTheSameAddonAndUserWorksAfterASignInAgain(t *testing.T) {
	t.Parallel()
	rotated := func(f *fixture) bool {
		in, err := f.st.Instance(context.Background(), "inst-1")
		if err != nil {
			t.Fatal(err)
		}
		return in.InFlight != ""
	}
	rotate := func(f *fixture, page string, session *http.Cookie) reply {
		t.Helper()
		return f.postForm("/dashboard/rotate", formFields(t, page, "/dashboard/rotate"), session)
	}

	t.Run("same user", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		page := f.get("/dashboard", f.userLogin("inst-1", "user-1")).body
		f.clock.Advance(10 * time.Minute)
		second := f.userLogin("inst-1", "user-1")
		if r := rotate(f, page, second); r.status != http.StatusSeeOther || !rotated(f) {
			t.Errorf("rotate from the first tab after a sign-in again = %d, rotation in flight %v; want 303 and a rotation:\n%s",
				r.status, rotated(f), r.body)
		}
	})
	t.Run("another user", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		page := f.get("/dashboard", f.userLogin("inst-1", "user-1")).body
		second := f.userLogin("inst-1", "user-2")
		if r := rotate(f, page, second); r.status != http.StatusForbidden || rotated(f) {
			t.Errorf("rotate from user-1's page under user-2's sign-in = %d, rotation in flight %v; want 403 and none", r.status, rotated(f))
		}
	})
	t.Run("signed out since", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		first := f.userLogin("inst-1", "user-1")
		page := f.get("/dashboard", first).body
		if r := f.postForm("/dashboard/logout", formFields(t, page, "/dashboard/logout"), first); r.status != http.StatusSeeOther {
			t.Fatalf("logout = %d", r.status)
		}
		second := f.userLogin("inst-1", "user-1")
		if r := rotate(f, page, second); r.status != http.StatusForbidden || rotated(f) {
			t.Errorf("rotate from a page of a signed-out session = %d, rotation in flight %v; want 403 and none", r.status, rotated(f))
		}
	})
	// Signing out in a second tab ends every sign-in of that user to the
	// add-on before it, not only the one that tab held: the first tab's
	// form stays refused after the customer signs in again.
	t.Run("a later sign-in signed out since", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		page := f.get("/dashboard", f.userLogin("inst-1", "user-1")).body
		f.clock.Advance(time.Minute)
		second := f.userLogin("inst-1", "user-1")
		secondPage := f.get("/dashboard", second).body
		if r := f.postForm("/dashboard/logout", formFields(t, secondPage, "/dashboard/logout"), second); r.status != http.StatusSeeOther {
			t.Fatalf("logout = %d", r.status)
		}
		f.clock.Advance(time.Minute)
		third := f.userLogin("inst-1", "user-1")
		if r := rotate(f, page, third); r.status != http.StatusForbidden || rotated(f) {
			t.Errorf("rotate from a page of a sign-in before a sign-out = %d, rotation in flight %v; want 403 and none", r.status, rotated(f))
		}
		thirdPage := f.get("/dashboard", third).body
		if r := rotate(f, thirdPage, third); r.status != http.StatusSeeOther || !rotated(f) {
			t.Errorf("rotate from the page of the sign-in after the sign-out = %d; want 303 and a rotation:\n%s", r.status, r.body)
		}
	})
	t.Run("past its sign-in's hour", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		page := f.get("/dashboard", f.userLogin("inst-1", "user-1")).body
		f.clock.Advance(50 * time.Minute)
		second := f.userLogin("inst-1", "user-1")
		f.clock.Advance(11 * time.Minute)
		if r := rotate(f, page, second); r.status != http.StatusForbidden || rotated(f) {
			t.Errorf("rotate from a page whose sign-in's hour is over = %d, rotation in flight %v; want 403 and none", r.status, rotated(f))
		}
	})
	t.Run("no user named", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		page := f.get("/dashboard", f.login("inst-1")).body
		second := f.login("inst-1")
		r := rotate(f, page, second)
		if r.status != http.StatusForbidden || rotated(f) {
			t.Errorf("rotate from a page of a sign-in naming no verified user = %d, rotation in flight %v; want 403 and none", r.status, rotated(f))
		}
		if !strings.Contains(r.body, "signed in again") || !strings.Contains(r.body, "reload") {
			t.Errorf("the refusal does not say the dashboard was signed in to again, nor to reload:\n%s", r.body)
		}
	})
	// A forged token naming another sign-in's nonce is refused.
	t.Run("forged", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		session := f.userLogin("inst-1", "user-1")
		for _, tok := range []string{"0123456789abcdef0123456789abcdef.9999999999." + strings.Repeat("ab", 32), "a.b.c", "..", strings.Repeat("ab", 32)} {
			if r := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {tok}, "addon_id": {"inst-1"}}, session); r.status != http.StatusForbidden {
				t.Errorf("rotate with token %q = %d, want 403", tok, r.status)
			}
		}
		if rotated(f) {
			t.Error("a forged token started a rotation")
		}
	})
}
