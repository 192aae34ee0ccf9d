//go:build browser

package web_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestBrowserRotateClickedTwicePostsOnce clicks "Rotate credentials" a
// second time while the server has yet to answer the first click, as a
// customer on a slow network does: the page's script has disabled the
// button, so the server gets one POST, and the page that follows says the
// rotation was requested.
func TestBrowserRotateClickedTwicePostsOnce(t *testing.T) {
	requireChromium(t)
	w := newBrowserWorld(t)
	b := startBrowser(t)
	w.signIn(b)
	release := w.holdRotatePosts()

	// While a form's answer is awaited, the tab takes no DevTools query:
	// the clicks go to where the button is, and the page records, in the
	// tab's sessionStorage, whether the button was disabled at each press.
	b.do("scroll to Rotate credentials", chromedp.ScrollIntoView(chromedp.ID("rotate")))
	at := value(b, "find the button", chromedp.Evaluate[[]float64](`(() => {
  sessionStorage.setItem("rekeyPresses", "[]");
  const r = document.getElementById("rotate");
  document.addEventListener("pointerdown", () => {
    const seen = JSON.parse(sessionStorage.getItem("rekeyPresses"));
    seen.push(r.disabled);
    sessionStorage.setItem("rekeyPresses", JSON.stringify(seen));
  }, true);
  const box = r.getBoundingClientRect();
  return [box.x + box.width / 2, box.y + box.height / 2];
})()`))
	b.do("click Rotate credentials", chromedp.MouseClickXY(at[0], at[1]))
	w.waitFor("the server to get the rotate form", func() bool { return w.rotatePosts.Load() >= 1 })
	b.do("click Rotate credentials again", chromedp.MouseClickXY(at[0], at[1]))
	release()
	b.waitUntil("the dashboard after the click", `document.querySelector(".notice") !== null`)
	if got := value(b, "read the notice", chromedp.Text(chromedp.CSS(".notice"))); got != "Rotation requested. Progress shows below." {
		t.Errorf("the page after the clicks says %q, want the rotation requested", got)
	}
	presses := value(b, "read the presses", chromedp.Evaluate[[]bool](`JSON.parse(sessionStorage.getItem("rekeyPresses"))`))
	if len(presses) != 2 || presses[0] || !presses[1] {
		t.Errorf("the button's disabled state at each press was %v, want [false true]", presses)
	}
	if n := w.rotatePosts.Load(); n != 1 {
		t.Errorf("the server got %d POSTs of the rotate form, want 1", n)
	}
}

// holdRotatePosts holds every POST of the rotate form until the function it
// returns is called, or the test ends.
func (w *browserWorld) holdRotatePosts() func() {
	gate := make(chan struct{})
	w.rotateGate.Store(&gate)
	release := sync.OnceFunc(func() { w.rotateGate.Store(nil); close(gate) })
	w.t.Cleanup(release)
	return release
}

// waitFor polls ok until it is true, failing the test after a minute.
func (w *browserWorld) waitFor(what string, ok func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			w.t.Fatalf("waited a minute for %s", what)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// TestBrowserBackAfterSignOut signs out, then goes Back: the browser must
// not show the dashboard with its forms from a cache. A dashboard left open
// in another tab of the same browser must not rotate when its form is
// posted after the sign-out.
func TestBrowserBackAfterSignOut(t *testing.T) {
	requireChromium(t)
	w := newBrowserWorld(t)
	b := startBrowser(t)
	w.signIn(b)
	stale := b.sameBrowserTab()
	stale.do("open the dashboard in a second tab", chromedp.Navigate(w.web.URL+"/dashboard"))

	b.do("click Sign out", chromedp.Click(chromedp.ID("logout")))
	b.waitUntil("the signed-out page", `document.querySelector("h1") && document.querySelector("h1").innerText === "Signed out"`)
	// history.back, not NavigateBack, which waits for a load event that a
	// page restored from the back-forward cache never fires.
	b.do("go back", chromedp.Evaluate[chromedp.Void](`history.back()`))
	b.waitUntil("the page Back shows", `location.pathname === "/dashboard" && document.readyState === "complete" &&
  document.querySelector("h1") !== null`)
	h := value(b, "read the heading", chromedp.Text(chromedp.CSS("h1")))
	forms := value(b, "count the forms", chromedp.Evaluate[int](`document.querySelectorAll("form").length`))
	b.screenshot("back-after-sign-out.png")
	if h != "Sign in through Heroku" || forms != 0 {
		t.Errorf("Back after signing out shows %q with %d forms, want Sign in through Heroku and none", h, forms)
	}

	stale.do("click Rotate credentials in the stale tab", chromedp.Click(chromedp.ID("rotate")))
	stale.waitUntil("the answer to the stale form", `document.querySelector("h1") && document.querySelector("h1").innerText !== "Credentials"`)
	if h := value(stale, "read the heading", chromedp.Text(chromedp.CSS("h1"))); !strings.Contains(h, "Sign in") {
		t.Errorf("the stale form's answer is %q, want Sign in through Heroku", h)
	}
	if in, err := w.st.Instance(context.Background(), w.sample.ID); err != nil {
		t.Fatal(err)
	} else if in.InFlight != "" {
		t.Errorf("the form posted after signing out started rotation %s", in.InFlight)
	}
}

// TestBrowserDashboardOfARevocationWeeksAwayStaysPut opens the dashboard of
// an instance whose old credential is revoked 30 days after its rotation
// (REKEY_MAX_GRACE allows graces that long): the page asks for the status
// once that time comes, and a wait longer than a browser's timer holds
// (about 24.8 days) must not fire at once, which reloaded the page on
// every answer. It polls nothing while it waits.
func TestBrowserDashboardOfARevocationWeeksAwayStaysPut(t *testing.T) {
	requireChromium(t)
	w := newBrowserWorld(t)
	b := startBrowser(t)
	ctx := context.Background()
	w.signIn(b)
	producer := fleet.NewProducer(w.st, asynq.NewClientFromRedisClient(w.redis.Client), fleet.WithMaxGrace(60*24*time.Hour))
	if _, err := producer.Rotate(ctx, fleet.Request{InstanceIDs: []string{w.sample.ID}, Reason: "weeks of grace",
		Grace: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	w.waitStore("the rotation to finish", func(in store.Instance) bool { return in.InFlight == "" })
	b.do("open the dashboard", chromedp.Navigate(w.web.URL+"/dashboard"))
	// 30 days less the seconds since, cut down to whole days.
	w.checkText(b, "status-text", "(in 29 days)")
	polls := w.statusPolls.Load()
	time.Sleep(3 * time.Second)
	if n := w.statusPolls.Load() - polls; n != 0 {
		t.Errorf("the dashboard of a revocation 30 days away asked for the status %d times in 3s, want none", n)
	}
	w.checkText(b, "status-text", "(in 29 days)")
}
