package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
)

// A double-click on "Rotate credentials" starts one rotation, and the
// browser shows the answer to the second click: that answer says the
// rotation in progress is the customer's own, before its mint (the second
// click joins it at the claim) and after it (answered from the instance's
// state), and so does a click from another sign-in of the same Heroku
// user. A rotation another user, an operator or the schedule started is
// still one the click joined.
func TestASecondClickOnTheCustomersOwnRotationSaysItIsTheirs(t *testing.T) {
	t.Parallel()
	const yours = "Your rotation is in progress."
	const joined = "A rotation was already in progress; your request joined it."
	// shown follows a click's redirect, and returns the notice the
	// dashboard shows.
	shown := func(f *fixture, click reply, session *http.Cookie) string {
		t.Helper()
		if click.status != http.StatusSeeOther || click.header.Get("Location") != "/dashboard" {
			t.Fatalf("click = %d to %q, want 303 to /dashboard:\n%s", click.status, click.header.Get("Location"), click.body)
		}
		c := noticeOf(click)
		if c == nil {
			t.Fatal("the click's answer left no notice")
		}
		page := f.get("/dashboard", session, c).body
		_, notice, _ := strings.Cut(page, `<p class="notice" role="status">`)
		notice, _, _ = strings.Cut(notice, "</p>")
		return notice
	}
	click := func(f *fixture, session *http.Cookie) reply {
		t.Helper()
		return f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session)
	}
	minted := func(f *fixture) {
		t.Helper()
		ctx := context.Background()
		in, err := f.st.Instance(ctx, "inst-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.SavePending(ctx, "inst-1", in.InFlight, "cred-1",
			map[string]secret.String{"MYADDON_URL": secret.New("postgres://new")}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("same sign-in, before and after the mint", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		session := f.login("inst-1")
		if page := shown(f, click(f, session), session); !strings.Contains(page, "Rotation requested.") {
			t.Fatalf("first click's dashboard does not say the rotation was requested: %q", page)
		}
		page := shown(f, click(f, session), session)
		if !strings.Contains(page, yours) || strings.Contains(page, joined) {
			t.Errorf("second click on the rotation just requested: the dashboard does not say %q: %q", yours, page)
		}
		minted(f)
		page = shown(f, click(f, session), session)
		if !strings.Contains(page, yours) || strings.Contains(page, joined) {
			t.Errorf("click on the customer's rotation past its mint: the dashboard does not say %q: %q", yours, page)
		}
	})
	t.Run("same user, another sign-in", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		shown(f, click(f, f.userLogin("inst-1", "user-1")), f.userLogin("inst-1", "user-1"))
		second := f.userLogin("inst-1", "user-1")
		if page := shown(f, click(f, second), second); !strings.Contains(page, yours) {
			t.Errorf("the same user's click from another sign-in: the dashboard does not say %q: %q", yours, page)
		}
	})
	t.Run("another user", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		shown(f, click(f, f.userLogin("inst-1", "user-1")), f.userLogin("inst-1", "user-1"))
		other := f.userLogin("inst-1", "user-2")
		if page := shown(f, click(f, other), other); !strings.Contains(page, joined) || strings.Contains(page, yours) {
			t.Errorf("another user's click: the dashboard does not say %q: %q", joined, page)
		}
		minted(f)
		if page := shown(f, click(f, other), other); !strings.Contains(page, joined) || strings.Contains(page, yours) {
			t.Errorf("another user's click past the mint: the dashboard does not say %q: %q", joined, page)
		}
	})
	t.Run("an operator's rotation", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register("inst-1", "cred-0")
		if r := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"incident"}`); r.status != http.StatusAccepted {
			t.Fatalf("operator's rotation: %d %s", r.status, r.body)
		}
		session := f.userLogin("inst-1", "user-1")
		if page := shown(f, click(f, session), session); !strings.Contains(page, joined) || strings.Contains(page, yours) {
			t.Errorf("click on an operator's rotation: the dashboard does not say %q: %q", joined, page)
		}
		minted(f)
		if page := shown(f, click(f, session), session); !strings.Contains(page, joined) || strings.Contains(page, yours) {
			t.Errorf("click on an operator's rotation past its mint: the dashboard does not say %q: %q", joined, page)
		}
	})
}
