//go:build browser

package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestBrowserDashboardAndMonitoring drives rekey's web process in headless
// Chromium, the way a customer and an operator use it: Heroku's single
// sign-on form lands the customer on the dashboard under Heroku's
// navigation header; an operator's rotation fails on Heroku; "Rotate
// credentials" runs a real rotation on the in-process worker while the
// page follows it; a second one is refused by the day's limit; the old
// credential is revoked after the grace; the customer signs out in a second
// tab while the first follows a rotation, which then says the session has
// ended, and the sign-in form does not work twice; signed in again, the
// customer opens another add-on in a second tab while the first follows a
// rotation, which then says so and stops, never showing the other add-on.
// An operator sees the queues in /monitoring. No page ever shows a secret, the operator's reason or an
// error's text.
func TestBrowserDashboardAndMonitoring(t *testing.T) {
	requireChromium(t)
	w := newBrowserWorld(t)
	customer := startBrowser(t)
	var pages []string

	w.signIn(customer)
	pages = append(pages, customer.html())
	customer.screenshot("dashboard-after-login.png")

	internal := w.operatorRotationFails(customer)
	pages = append(pages, customer.html())
	customer.screenshot("dashboard-after-failed-operator-rotation.png")

	before := w.snapshot()
	w.rotate(customer, before)
	pages = append(pages, customer.html())
	customer.screenshot("dashboard-after-rotation.png")
	after := w.snapshot()
	w.checkRotated(before, after)

	// The second click is tried in another tab of the same browser: this
	// one stays on the dashboard drawn after the rotation, which counts
	// down to the old credential's revocation.
	other := customer.sameBrowserTab()
	other.do("open the dashboard in a second tab", chromedp.Navigate(w.web.URL+"/dashboard"))
	pages = append(pages, w.secondRotationRefused(other)...)

	w.checkRevoked(customer, before)
	pages = append(pages, customer.html())
	customer.screenshot("dashboard-after-revocation.png")

	pages = append(pages, w.signOutWhileFollowing(customer)...)
	pages = append(pages, w.replaySignIn(customer))
	pages = append(pages, w.otherAddonWhileFollowing(customer)...)

	pages = append(pages, w.monitoring(customer.newTab()))
	w.checkNoSecrets(pages, before, after)
	w.checkCustomerText(pages[:len(pages)-1], internal)
}

// signIn posts Heroku's SSO form from a page on another site and checks
// that the browser lands on the dashboard, under Heroku's navigation header
// with the app's and the add-on's names, and that the page names the
// config vars a rotation changes and the customer's limit.
func (w *browserWorld) signIn(b *tab) {
	w.t.Helper()
	w.ssoURL = w.ssoPage(w.sample.ID, browserApp, browserAddon)
	b.do("open Heroku's sign-in page", chromedp.Navigate(w.ssoURL))
	b.do("post Heroku's sign-in form", chromedp.Submit(chromedp.ID("heroku-sso")))
	b.waitUntil("the dashboard after sign-in", `document.getElementById("rotate") !== null`)
	if loc := value(b, "read the location", chromedp.Location()); loc != w.web.URL+"/dashboard" {
		w.t.Fatalf("after sign-in the browser is at %s, want %s/dashboard", loc, w.web.URL)
	}
	if h := value(b, "read the heading", chromedp.Text(chromedp.CSS("h1"))); h != "Credentials" {
		w.t.Errorf("got heading %q, want Credentials", h)
	}
	w.checkText(b, "heroku-nav", "Heroku")
	w.checkText(b, "nav-app", browserApp)
	w.checkText(b, "nav-addon", browserAddon)
	if href := value(b, "read the app's link", chromedp.AttributeValue(chromedp.ID("nav-app"), "href")); href.Value != "https://dashboard.heroku.com/apps/"+browserApp+"/resources" {
		w.t.Errorf("the header's app links to %q, want the app's resources in the Heroku Dashboard", href.Value)
	}
	w.checkText(b, "addon", "The add-on "+browserAddon+" on the app "+browserApp+".")
	in, err := w.st.Instance(context.Background(), w.sample.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	if len(in.ConfigVars) == 0 {
		w.t.Fatal("the sample instance has no config vars to show")
	}
	for _, name := range in.ConfigVars {
		w.checkText(b, "config-vars", name)
	}
	w.checkText(b, "rotate-help", "The old credential keeps working for 5 seconds, then it is revoked.")
	w.checkText(b, "rotate-rules", "You can rotate once in any 24 hours.")
	w.checkText(b, "status", "Up to date.")
	w.checkText(b, "current", w.sample.Provisioned)
	// When the next rotation falls is configuration; the row must say something.
	w.checkText(b, "next-rotation", "")
}

// The names Heroku's sign-in form gives in nav-data and app: for the
// sample instance, and for the other add-on.
const (
	browserApp        = "app-1"
	browserAddon      = "Rekey Demo"
	browserOtherAddon = "Rekey Demo Staging"
)

// ssoPage serves, from another site (localhost, where rekey is on
// 127.0.0.1), the form Heroku's dashboard posts to an add-on's sso_url,
// signed now for the instance id, which is the add-on addon on the app app,
// and returns its URL.
func (w *browserWorld) ssoPage(id, app, addon string) string {
	w.t.Helper()
	salt, ts := w.cfg.SSOSalt.Reveal(), strconv.FormatInt(time.Now().Unix(), 10)
	const email, userID = "dev@example.com", "user-0001"
	tokens := []string{sha1Hex(id + ":" + salt + ":" + ts),
		sha256Hex(id + ":" + salt + ":" + ts + ":" + userID + ":" + email)}
	w.ssoTokens = append(w.ssoTokens, tokens...)
	fields := []struct{ Name, Value string }{
		{"resource_id", id},
		{"timestamp", ts},
		{"resource_token", tokens[0]},
		{"user_scoped_resource_token", tokens[1]},
		{"email", email},
		{"user_id", userID},
		{"app", app},
		{"context_app", app},
		{"nav-data", base64.RawURLEncoding.EncodeToString([]byte(
			`{"addon":"` + addon + `","appname":"` + app + `","addons":[{"slug":"rekey-demo","name":"` + addon + `","current":true}]}`))},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = ssoTemplate.Execute(rw, struct {
			Action string
			Fields any
		}{w.web.URL + "/sso/login", fields})
	}))
	w.t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return "http://localhost:" + u.Port() + "/"
}

var ssoTemplate = template.Must(template.New("sso").Parse(`<!doctype html>
<html><head><title>Heroku</title></head><body>
<form id="heroku-sso" method="post" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit">Open the add-on's dashboard</button>
</form></body></html>`))

// rotationDone is true once the dashboard, rendered by the server after
// the rotation, shows it pushed and promoted, and the status says so.
const rotationDone = `(() => {
  const timeline = document.getElementById("timeline");
  const status = document.getElementById("status");
  if (!timeline || !status || document.body.dataset.busy !== "false") { return false; }
  const t = timeline.innerText, s = status.innerText.trim();
  return t.includes("Pushed to Heroku: apps release and restart") &&
    t.includes("New credential is now current") &&
    (s.startsWith("Rotated.") || s.startsWith("Up to date."));
})()`

// rotate clicks "Rotate credentials" and waits until the page, which
// follows the rotation by itself, shows it done.
func (w *browserWorld) rotate(b *tab, before snapshot) {
	w.t.Helper()
	b.do("click Rotate credentials", chromedp.Click(chromedp.ID("rotate")))
	b.waitUntil("the dashboard to show the rotation done", rotationDone)
	in := w.waitStore("the rotation to finish", func(in store.Instance) bool { return in.InFlight == "" })
	if in.CurrentCredential == before.credentialID {
		w.t.Fatalf("current credential is still %s after the rotation", in.CurrentCredential)
	}
	w.checkText(b, "current", in.CurrentCredential)
	w.checkText(b, "timeline", "New credential is now current ("+in.CurrentCredential+")")
	w.checkText(b, "timeline", "Rotation requested by you")
}

// checkRotated checks the rotation where it counts: the store's current
// credential, and the value in the add-on's config on Heroku.
func (w *browserWorld) checkRotated(before, after snapshot) {
	w.t.Helper()
	if after.credentialID == before.credentialID || after.value == before.value {
		w.t.Fatalf("credential did not change: before %s, after %s", before.credentialID, after.credentialID)
	}
	if id, ok := w.sb.Demo.Lookup(after.value); !ok || id != after.credentialID {
		w.t.Errorf("Heroku's config holds credential %q, want the store's current %s", id, after.credentialID)
	}
}

// checkRevoked waits for the worker to revoke the old credential after
// the grace, and for the dashboard, left open since the rotation, to show
// it by itself: at the revoke time it counted down to, the page follows the
// revocation as it follows a rotation, rather than go on showing the old
// credential as valid "in less than a minute".
func (w *browserWorld) checkRevoked(b *tab, before snapshot) {
	w.t.Helper()
	// The page counts down each second: once due, a count reads "due now"
	// until the page follows the revocation. Noted in sessionStorage,
	// which outlives the page's reloads.
	counting := value(b, "watch the counts", chromedp.Evaluate[bool](`(() => {
  sessionStorage.setItem("rekeyDueNow", "no");
  const seen = () => {
    if ([...document.querySelectorAll("[data-until]")].some(c => c.textContent === "due now")) {
      sessionStorage.setItem("rekeyDueNow", "yes");
    }
  };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
  return [...document.querySelectorAll("[data-until]")].some(c => Date.parse(c.dataset.until) > Date.now() + 1000);
})()`))
	w.waitStore("the old credential to be revoked", func(store.Instance) bool {
		c, err := w.st.Credential(context.Background(), w.sample.ID, before.credentialID)
		return err == nil && c.State == store.CredentialRevoked
	})
	b.waitUntil("the open dashboard to show the revocation", `document.getElementById("previous-none") !== null`)
	if due := value(b, "read what the counts said", chromedp.Evaluate[string](`sessionStorage.getItem("rekeyDueNow")`)); counting && due != "yes" {
		w.t.Errorf("the dashboard's count of the revoke time never read \"due now\" (%q)", due)
	}
	w.checkText(b, "timeline", "Old credential revoked ("+before.credentialID+")")
	w.checkText(b, "previous-none", "None.")
	if w.sb.Demo.Valid(before.credentialID) {
		w.t.Error("the issuer still honours the old credential")
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		w.t.Errorf("invariants broken: %s", strings.Join(v, "; "))
	}
}

// checkText checks that the element with the id shows something, and want.
func (w *browserWorld) checkText(b *tab, id, want string) {
	w.t.Helper()
	got := value(b, "read #"+id, chromedp.Text(chromedp.ID(id)))
	if !strings.Contains(got, want) || strings.TrimSpace(got) == "" {
		w.t.Errorf("#%s shows %q, want it to contain %q", id, got, want)
	}
}

// monitoring opens /monitoring as an operator and waits until asynqmon's
// page lists every queue rekey's tasks went to. It returns the page's HTML.
func (w *browserWorld) monitoring(b *tab) string {
	w.t.Helper()
	queues, err := w.insp.Queues()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, q := range []string{tasks.QueueInteractive, tasks.QueueRevoke} {
		if !slices.Contains(queues, q) {
			w.t.Errorf("queues are %v, want %s among them", queues, q)
		}
	}
	b.setHeaders(map[string]string{"Authorization": basic("operator", w.cfg.DashboardPassword.Reveal())})
	b.do("open /monitoring", chromedp.Navigate(w.web.URL+"/monitoring"))
	b.waitUntil("asynqmon to list the queues "+strings.Join(queues, ", "), queuesListed(queues))
	html := b.html()
	b.screenshot("monitoring.png")
	return html
}

// queuesListed is true once every queue is the whole text of some element
// of the page.
func queuesListed(queues []string) string {
	names, _ := json.Marshal(queues)
	return `(() => {
  const texts = new Set(Array.from(document.querySelectorAll("body *"), e => e.innerText && e.innerText.trim()));
  return ` + string(names) + `.every(q => texts.has(q));
})()`
}

// snapshot is the instance's credential as the store and Heroku hold it,
// with the secrets that must never reach a page.
type snapshot struct {
	credentialID string
	// value is the credential's config value on Heroku: a database URL
	// with a password.
	value        string
	accessToken  string
	refreshToken string
}

func (w *browserWorld) snapshot() snapshot {
	w.t.Helper()
	ctx := context.Background()
	in, err := w.st.Instance(ctx, w.sample.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	tok, err := w.st.LoadToken(ctx, w.sample.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return snapshot{credentialID: in.CurrentCredential, value: w.sb.Fake.Config(w.sample.ID)[issuer.DefaultConfigVar],
		accessToken: tok.AccessToken.Reveal(), refreshToken: tok.RefreshToken.Reveal()}
}

// checkNoSecrets greps every page the browser showed for every secret
// rekey holds: its own, the OAuth tokens, and the credential values.
func (w *browserWorld) checkNoSecrets(pages []string, snaps ...snapshot) {
	w.t.Helper()
	secrets := map[string]string{
		"REKEY_API_TOKEN":            w.cfg.APIToken.Reveal(),
		"REKEY_DASHBOARD_PASSWORD":   w.cfg.DashboardPassword.Reveal(),
		"HEROKU_SSO_SALT":            w.cfg.SSOSalt.Reveal(),
		"HEROKU_OAUTH_CLIENT_SECRET": w.cfg.OAuthClientSecret.Reveal(),
		"HEROKU_ADDON_PASSWORD":      w.cfg.AddonPassword.Reveal(),
		"REKEY_ISSUER_SECRET":        w.cfg.IssuerSecret.Reveal(),
		"REKEY_ENCRYPTION_KEYS":      w.sb.EncryptionKey.Reveal(),
	}
	for i, tok := range w.ssoTokens {
		secrets["SSO token "+strconv.Itoa(i)] = tok
	}
	for i, s := range snaps {
		n := strconv.Itoa(i)
		secrets["credential value "+n] = s.value
		secrets["credential password "+n] = urlPassword(s.value)
		secrets["OAuth access token "+n] = s.accessToken
		secrets["OAuth refresh token "+n] = s.refreshToken
	}
	for i, page := range pages {
		for name, s := range secrets {
			if s == "" {
				w.t.Errorf("secret %s is empty; the scan would prove nothing", name)
			} else if strings.Contains(page, s) {
				w.t.Errorf("page %d shows %s", i, name)
			}
		}
	}
}

func urlPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}
