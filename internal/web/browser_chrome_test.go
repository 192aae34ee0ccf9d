//go:build browser

package web_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium package, which CI installs.
const chromiumPath = "/usr/bin/chromium"

// browserWait bounds every wait for the page to reach a state.
const browserWait = time.Minute

// tab is one browser tab the test drives, with the deadline of its waits.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// startBrowser starts headless Chromium with a fresh profile and no way
// out to the internet, and returns its first tab. The browser stops when
// the test ends.
func startBrowser(t *testing.T) *tab {
	t.Helper()
	requireChromium(t)
	profile := filepath.Join(t.TempDir(), "profile")
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromiumOptions(profile)...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	// Registered after TempDir, so it runs first: the browser and its child
	// processes are gone before the profile is removed.
	t.Cleanup(func() { cancelTab(); cancelAlloc(); removeProfile(t, profile) })
	// The first action starts the browser, on a context without a deadline:
	// the browser lives as long as that context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return &tab{t: t, ctx: ctx}
}

// requireChromium fails the test, never skips it, when Chromium is missing:
// the browser tag asks for a browser.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (%v): install Debian's chromium package "+
			"(apt-get install chromium), or build without -tags browser", chromiumPath, err)
	}
}

// chromiumOptions are the browser's flags. Every host name but localhost
// and 127.0.0.1 fails to resolve, so nothing a page asks for leaves the
// machine.
func chromiumOptions(profile string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1280, 900),
	}
}

// removeProfile removes the browser's profile, trying again for a few
// seconds while Chromium's last child processes finish writing to it.
func removeProfile(t *testing.T, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("remove browser profile: %v", err)
			}
			return
		}
		<-time.After(50 * time.Millisecond)
	}
}

// newTab opens another tab in a browser context of its own, so it shares
// no cookies with the others.
func (b *tab) newTab() *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab: %v", err)
	}
	return &tab{t: b.t, ctx: ctx}
}

// sameBrowserTab opens another tab of the same browser context: it shares
// the tab's cookies, as a customer's second tab does.
func (b *tab) sameBrowserTab() *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab: %v", err)
	}
	return &tab{t: b.t, ctx: ctx}
}

// do runs steps, failing the test after browserWait.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// value runs one action for its value, failing the test after browserWait.
func value[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// waitUntil waits until the JavaScript expression cond is true in the
// page, across the page's own reloads, and fails the test after
// browserWait. The page checks cond every 100 ms; a reload cuts a check
// short, and the next one runs in the new document.
func (b *tab) waitUntil(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	for {
		left := time.Until(deadlineOf(ctx))
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(left)))
		switch {
		case err == nil:
			return
		case errors.Is(err, chromedp.ErrPollingTimeout), ctx.Err() != nil:
			b.t.Fatalf("waited %s for %s: %v\npage text:\n%s", browserWait, what, err, b.pageText())
		}
		// A navigation ended the check; give the new document a moment.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// pageText is what the page shows, for failure messages.
func (b *tab) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return text
}

// html is the document's markup as the browser holds it now, scripts'
// changes included.
func (b *tab) html() string {
	b.t.Helper()
	return value(b, "read the page's HTML", chromedp.OuterHTML(chromedp.CSS("html")))
}

// setHeaders sends headers with every request the tab makes from now on.
func (b *tab) setHeaders(h map[string]string) {
	b.t.Helper()
	headers := network.Headers{}
	for k, v := range h {
		headers[k] = v
	}
	b.do("set request headers", func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: headers})
		return chromedp.Void{}, err
	})
}

// screenshot saves a PNG of the whole page as name in the screenshot
// directory: REKEY_SCREENSHOTS, or the test's temporary directory.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	png := value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	dir := os.Getenv("REKEY_SCREENSHOTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}
