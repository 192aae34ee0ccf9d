package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// formFields reads the hidden fields of the dashboard form posting to action.
func formFields(t *testing.T, page, action string) url.Values {
	t.Helper()
	i := strings.Index(page, `action="`+action+`"`)
	if i < 0 {
		t.Fatalf("the page has no form posting to %s:\n%s", action, page)
	}
	form := page[i:]
	form = form[:strings.Index(form, "</form>")]
	v := url.Values{}
	for _, in := range strings.Split(form, `<input type="hidden" name="`)[1:] {
		name, rest, _ := strings.Cut(in, `" value="`)
		value, _, _ := strings.Cut(rest, `"`)
		v.Set(name, value)
	}
	return v
}

// A customer with two add-ons opens the first's dashboard, then the
// second's in another tab (the browser holds one session), and clicks a
// button on the first tab. The click is refused; the page must say that the
// browser is now signed in to another add-on, not ask to reload and try
// again: the reloaded dashboard is the other add-on's, whose apps a click
// there would restart.
func TestAFormOfAnAddonSignedOutByAnotherSignInSaysSo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-prod", "cred-p")
	f.register("inst-staging", "cred-s")
	f.rotate("inst-prod", "rot-p", "cred-p2", 0)
	prod := f.login("inst-prod")
	page := f.get("/dashboard", prod).body
	staging := f.login("inst-staging") // the second tab; the browser keeps this cookie
	for _, action := range []string{"/dashboard/rotate", "/dashboard/revoke-now", "/dashboard/logout"} {
		form := formFields(t, page, action)
		form.Set("confirm", "yes")
		r := f.postForm(action, form, staging)
		if r.status != http.StatusForbidden {
			t.Errorf("%s from the first add-on's page = %d, want 403", action, r.status)
		}
		if strings.Contains(r.body, "try again") || strings.Contains(r.body, `href="/dashboard"`) {
			t.Errorf("%s from the first add-on's page leads to the dashboard, now the other add-on's:\n%s", action, r.body)
		}
		if !strings.Contains(r.body, "another add-on") {
			t.Errorf("%s from the first add-on's page does not say the browser signed in to another add-on:\n%s", action, r.body)
		}
	}
	for _, id := range []string{"inst-prod", "inst-staging"} {
		if in, _ := f.st.Instance(context.Background(), id); in.InFlight != "" {
			t.Errorf("%s has rotation %s in flight", id, in.InFlight)
		}
	}
	if r := f.get("/dashboard", staging); r.status != http.StatusOK {
		t.Errorf("the second sign-in's session after the refused clicks = %d, want 200", r.status)
	}
}
