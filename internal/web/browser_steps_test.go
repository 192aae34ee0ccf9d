//go:build browser

package web_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// operatorReason is an operator's free-text reason, which only operators
// may read.
const operatorReason = "INC-4711 leaked key in public gist"

// operatorRotationFails requests a rotation through the HTTP API, as an
// operator does, with a reason; Heroku refuses its config update, so it
// fails with an error whose text names Heroku's answer. The dashboard,
// reloaded, must tell the customer in fixed sentences. It returns the
// error's text, which no customer page may show.
func (w *browserWorld) operatorRotationFails(b *tab) string {
	w.t.Helper()
	w.sb.Fake.Script(herokufake.PatchConfig, herokufake.Respond(http.StatusUnprocessableEntity))
	req, err := http.NewRequest(http.MethodPost, w.web.URL+"/api/v1/rotations",
		strings.NewReader(`{"instance_ids":["`+w.sample.ID+`"],"reason":"`+operatorReason+`"}`))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+w.cfg.APIToken.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.web.Client().Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		w.t.Fatalf("operator's rotation: got %d: %s", resp.StatusCode, body)
	}
	in := w.waitStore("the operator's rotation to fail", func(in store.Instance) bool {
		return in.InFlight == "" && in.LastError != ""
	})
	b.do("reload the dashboard", chromedp.Navigate(w.web.URL+"/dashboard"))
	w.checkText(b, "last-error", "Heroku did not accept the new credential for your app's config vars. Your current credential keeps working.")
	w.checkText(b, "timeline", "Rotation requested by an operator")
	w.checkText(b, "timeline", "Rotation failed. Heroku did not accept")
	w.checkTimelineOldestFirst(b)
	return in.LastError
}

// checkTimelineOldestFirst checks that the timeline's times never go back.
func (w *browserWorld) checkTimelineOldestFirst(b *tab) {
	w.t.Helper()
	times := value(b, "read the timeline's times", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#timeline time"), t => t.getAttribute("datetime"))`))
	if len(times) < 2 {
		w.t.Fatalf("the timeline has %d entries, want the story so far", len(times))
	}
	for i := 1; i < len(times); i++ {
		if times[i] < times[i-1] {
			w.t.Errorf("timeline entry %d (%s) is older than the one before it (%s): want oldest first", i, times[i], times[i-1])
		}
	}
}

// secondRotationRefused checks that, the day's one rotation used, the page
// says so and disables the button, and that a click that gets through
// anyway is refused with the same sentence. It returns the pages it saw.
func (w *browserWorld) secondRotationRefused(b *tab) []string {
	w.t.Helper()
	const used = "1 of 1 rotations today used. You can rotate again after "
	w.checkText(b, "rotate-limit", used)
	if !value(b, "read the button", chromedp.Evaluate[bool](`document.getElementById("rotate").disabled`)) {
		w.t.Error("the rotate button is enabled after the day's one rotation")
	}
	dashboard := b.html()
	// A stale tab or a crafted request would still post the form.
	b.do("post the rotate form anyway", chromedp.Evaluate[chromedp.Void](
		`(() => { const r = document.getElementById("rotate"); r.disabled = false; r.click(); })()`))
	b.waitUntil("the refusal", `document.querySelector("h1") && document.querySelector("h1").innerText === "Rotation not available yet"`)
	if got := value(b, "read the refusal", chromedp.Text(chromedp.CSS(`p[role="alert"]`))); !strings.HasPrefix(got, used) {
		w.t.Errorf("refusal reads %q, want it to start %q", got, used)
	}
	refusal := b.html()
	b.screenshot("second-rotation-refused.png")
	if in, _ := w.st.Instance(context.Background(), w.sample.ID); in.InFlight != "" {
		w.t.Errorf("the refused click started rotation %s", in.InFlight)
	}
	return []string{dashboard, refusal}
}

// signOutWhileFollowing has the dashboard follow a rotation in flight (an
// operator's, claimed with no task yet, so that it stays in flight), then
// signs out in a second tab of the same browser. The first tab's next status
// poll is answered 401: it must say the session has ended and stop polling,
// rather than show an error or poll on. It returns the pages it saw.
func (w *browserWorld) signOutWhileFollowing(b *tab) []string {
	w.t.Helper()
	ctx := context.Background()
	rot := tasks.NewID("rot")
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: w.sample.ID, RotationID: rot,
		Reason: operatorReason, Queue: tasks.QueueDefault}); err != nil {
		w.t.Fatal(err)
	}
	b.do("reload the dashboard", chromedp.Navigate(w.web.URL+"/dashboard"))
	w.checkText(b, "status-text", "Rotation in progress")
	if !value(b, "read data-busy", chromedp.Evaluate[bool](`document.body.getAttribute("data-busy") === "true"`)) {
		w.t.Fatal("the dashboard does not follow the rotation in flight")
	}
	polls := w.statusPolls.Load()
	other := b.sameBrowserTab()
	other.do("open the dashboard in a second tab", chromedp.Navigate(w.web.URL+"/dashboard"))
	pages := w.signOut(other)
	const ended = "Your session has ended. Open this add-on again from your Heroku dashboard to follow the rotation."
	w.saysAndStopsPolling(b, polls, "its session ended", ended, "dashboard-session-ended.png")
	return append(pages, b.html())
}

// saysAndStopsPolling waits until tab b's status says sentence, which it
// may say only after asking the server once more than polls, then checks
// that it polls no more: what happened (why) ended its following.
func (w *browserWorld) saysAndStopsPolling(b *tab, polls int64, why, sentence, screenshot string) {
	w.t.Helper()
	b.waitUntil("the first tab to say "+why,
		`document.getElementById("status-text").textContent === `+strconv.Quote(sentence))
	b.screenshot(screenshot)
	if w.statusPolls.Load() == polls {
		w.t.Errorf("the first tab said %s without asking the server", why)
	}
	// Polls come 2 s apart: three intervals without one shows it stopped.
	after := w.statusPolls.Load()
	time.Sleep(6 * time.Second)
	if n := w.statusPolls.Load() - after; n != 0 {
		w.t.Errorf("the first tab polled %d more times after %s", n, why)
	}
	w.checkText(b, "status-text", sentence)
}

// signOut clicks "Sign out", checks that the page it leads to says so
// again when reloaded, and that the dashboard then asks the customer to
// sign in through Heroku again. It returns the pages it saw.
func (w *browserWorld) signOut(b *tab) []string {
	w.t.Helper()
	b.do("click Sign out", chromedp.Click(chromedp.ID("logout")))
	b.waitUntil("the signed-out page", `document.querySelector("h1") && document.querySelector("h1").innerText === "Signed out"`)
	out := b.html()
	b.screenshot("signed-out.png")
	// The sign-out's answer is a redirect: a reload asks for the page again.
	b.do("reload the signed-out page", chromedp.Reload())
	b.waitUntil("the signed-out page reloaded", `document.querySelector("h1") && document.querySelector("h1").innerText === "Signed out"`)
	b.do("open the dashboard after signing out", chromedp.Navigate(w.web.URL+"/dashboard"))
	if h := value(b, "read the heading", chromedp.Text(chromedp.CSS("h1"))); h != "Sign in through Heroku" {
		w.t.Errorf("after signing out the dashboard shows %q, want Sign in through Heroku", h)
	}
	return []string{out, b.html()}
}

// replaySignIn posts the same sign-in form again, as someone who copied
// it would, and checks that it is refused. It returns the page.
func (w *browserWorld) replaySignIn(b *tab) string {
	w.t.Helper()
	b.do("open Heroku's sign-in page again", chromedp.Navigate(w.ssoURL))
	b.do("post the same sign-in form again", chromedp.Submit(chromedp.ID("heroku-sso")))
	b.waitUntil("the refusal of the used form", `document.querySelector("h1") && document.querySelector("h1").innerText === "Sign-in link already used"`)
	page := b.html()
	b.screenshot("sign-in-replay-refused.png")
	return page
}

// otherAddonWhileFollowing signs in to the sample add-on again and has the
// dashboard follow a rotation in flight, then signs in to the other add-on
// in a second tab of the same browser, which replaces the session's cookie.
// The first tab's next status poll is answered with the other add-on's
// status: the first tab must say another add-on was opened and stop
// polling, and never show the other add-on's status or ids, nor leave its
// page. It returns the pages it saw.
func (w *browserWorld) otherAddonWhileFollowing(b *tab) []string {
	w.t.Helper()
	ctx := context.Background()
	b.do("open Heroku's sign-in page again", chromedp.Navigate(w.ssoPage(w.sample.ID, browserApp, browserAddon)))
	b.do("post a new sign-in form", chromedp.Submit(chromedp.ID("heroku-sso")))
	b.waitUntil("the dashboard after signing in again", `document.getElementById("rotate") !== null`)
	// signOutWhileFollowing's rotation may still be in flight; if not, an
	// operator's is claimed, with no task, so that it stays in flight.
	in, err := w.st.Instance(ctx, w.sample.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	if in.InFlight == "" {
		if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: w.sample.ID, RotationID: tasks.NewID("rot"),
			Reason: operatorReason, Queue: tasks.QueueDefault}); err != nil {
			w.t.Fatal(err)
		}
	}
	b.do("reload the dashboard", chromedp.Navigate(w.web.URL+"/dashboard"))
	following := value(b, "read the status", chromedp.Text(chromedp.ID("status-text")))
	if !strings.HasPrefix(following, "Rotation in progress") ||
		!value(b, "read data-busy and data-addon", chromedp.Evaluate[bool](
			`document.body.dataset.busy === "true" && document.body.dataset.addon === `+strconv.Quote(w.sample.ID))) {
		w.t.Fatalf("the dashboard does not follow the sample add-on's rotation in flight; it shows %q", following)
	}
	// The page records what its status and timeline show, and the add-on
	// each status answer names. A navigation would drop the record.
	b.do("record what the first tab shows", chromedp.Evaluate[chromedp.Void](`(() => {
  const seen = window.rekeySeen = [], answers = window.rekeyAnswers = [];
  const record = () => seen.push(document.getElementById("status-text").textContent,
    document.getElementById("timeline").textContent);
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
  const fetch = window.fetch;
  window.fetch = function () {
    return fetch.apply(this, arguments).then(r => {
      r.clone().json().then(d => answers.push(d.instance_id), () => answers.push("(not JSON)"));
      return r;
    });
  };
})()`))
	polls := w.statusPolls.Load()
	other := b.sameBrowserTab()
	other.do("open Heroku's sign-in page for the other add-on",
		chromedp.Navigate(w.ssoPage(w.other.ID, w.other.App, browserOtherAddon)))
	other.do("post the other add-on's sign-in form", chromedp.Submit(chromedp.ID("heroku-sso")))
	other.waitUntil("the other add-on's dashboard", `document.body && document.body.dataset.addon === `+strconv.Quote(w.other.ID))
	w.checkText(other, "nav-addon", browserOtherAddon)
	w.checkText(other, "addon-id", w.other.ID)
	otherStatus := strings.TrimSpace(value(other, "read the other add-on's status", chromedp.Text(chromedp.ID("status-text"))))
	if otherStatus == "" || strings.Contains(following, otherStatus) {
		w.t.Fatalf("the other add-on's status %q is not told apart from the sample's %q; the check would prove nothing", otherStatus, following)
	}
	pages := []string{other.html()}
	const opened = "You opened another add-on in this browser. Open this add-on again from your Heroku dashboard to follow its rotation."
	w.saysAndStopsPolling(b, polls, "another add-on was opened", opened, "dashboard-other-addon-opened.png")
	rec := value(b, "read what the first tab showed", chromedp.Evaluate[*struct {
		Seen    []string
		Answers []string
		Addon   string
		ID      string
	}](`window.rekeySeen ? {seen: window.rekeySeen, answers: window.rekeyAnswers,
  addon: document.body.dataset.addon, id: document.getElementById("addon-id").textContent} : null`))
	if rec == nil {
		w.t.Fatal("the first tab left its page after another add-on was opened")
	}
	if n := len(rec.Answers); n == 0 || rec.Answers[n-1] != w.other.ID {
		w.t.Errorf("the first tab's status answers named %v, want its last one to name the other add-on %s: "+
			"a poll after the other sign-in", rec.Answers, w.other.ID)
	}
	if rec.Addon != w.sample.ID || rec.ID != w.sample.ID {
		w.t.Errorf("the first tab names add-on %q (%q), want %s", rec.Addon, rec.ID, w.sample.ID)
	}
	pages = append(pages, w.recordGoneWhileFollowing(other)...)
	page := b.html()
	for name, s := range map[string]string{"status": otherStatus, "id": w.other.ID, "credential": w.other.Provisioned} {
		for _, shown := range append(rec.Seen, page) {
			if strings.Contains(shown, s) {
				w.t.Errorf("the first tab showed the other add-on's %s %q", name, s)
				break
			}
		}
	}
	return append(pages, page)
}

// checkCustomerText checks that no customer page shows what only
// operators may read: the operator's reason, the error's text, or a word
// of Heroku's error answer.
func (w *browserWorld) checkCustomerText(pages []string, internal string) {
	w.t.Helper()
	if internal == "" {
		w.t.Fatal("the failed rotation recorded no error text; the scan would prove nothing")
	}
	w.t.Logf("the failed rotation's error text, for operators only: %q", internal)
	never := []string{operatorReason, "INC-4711", internal}
	// The text after the step ("push: ..."), which is Heroku's answer.
	if _, cause, ok := strings.Cut(internal, ": "); ok {
		never = append(never, cause)
	}
	for i, page := range pages {
		for _, s := range never {
			if strings.Contains(page, s) {
				w.t.Errorf("customer page %d shows %q", i, s)
			}
		}
	}
}

// recordGoneWhileFollowing: the other add-on's tab follows a rotation in
// flight while the add-on is deprovisioned and its record removed (the
// audit retention ended). The tab must say that the add-on is no longer
// known and stop polling, not poll on under the old status. It returns
// the page it saw.
func (w *browserWorld) recordGoneWhileFollowing(b *tab) []string {
	w.t.Helper()
	ctx := context.Background()
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: w.other.ID, RotationID: tasks.NewID("rot"),
		Reason: operatorReason, Queue: tasks.QueueDefault}); err != nil {
		w.t.Fatal(err)
	}
	b.do("reload the other add-on's dashboard", chromedp.Navigate(w.web.URL+"/dashboard"))
	if !value(b, "read data-busy", chromedp.Evaluate[bool](`document.body.dataset.busy === "true"`)) {
		w.t.Fatal("the other add-on's dashboard does not follow its rotation in flight")
	}
	polls := w.statusPolls.Load()
	if err := w.redis.Client.Del(ctx, "rekey:instance:"+w.other.ID).Err(); err != nil {
		w.t.Fatal(err)
	}
	const gone = "This add-on is no longer known to the credential service: it was deprovisioned and its records " +
		"were removed. Nothing more happens to its credentials here."
	w.saysAndStopsPolling(b, polls, "the add-on's record is gone", gone, "dashboard-addon-gone.png")
	return []string{b.html()}
}
