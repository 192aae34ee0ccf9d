package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/tasks"
)

// finish promotes the rotation in flight for id as a worker would, with a
// one-hour grace, and returns its id.
func (f *fixture) finish(id, newCred string) string {
	f.t.Helper()
	ctx := context.Background()
	in, err := f.st.Instance(ctx, id)
	if err != nil || in.InFlight == "" {
		f.t.Fatalf("instance %s has no rotation in flight (%v)", id, err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret + "?cred=" + newCred)}
	if err := f.st.SavePending(ctx, id, in.InFlight, newCred, cfg); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, id, in.InFlight, newCred, time.Hour, ""); err != nil {
		f.t.Fatal(err)
	}
	return in.InFlight
}

func withCustomerLimits(perDay int, onePerGrace bool) func(*web.Params) {
	return func(p *web.Params) {
		p.CustomerLimits = store.CustomerLimits{PerDay: perDay, OnePerGrace: onePerGrace}
	}
}

func TestCustomerCannotRotateAgainWithinTheGrace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withCustomerLimits(3, true))
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	if resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session); resp.status != http.StatusSeeOther {
		t.Fatalf("first click: got %d, want 303", resp.status)
	}
	f.finish("inst-1", "cred-1")
	const want = "You can rotate again after 07:30:32 UTC, when the previous credential is revoked."
	page := f.get("/dashboard", session).body
	if !strings.Contains(page, want) || !strings.Contains(page, `rotate-limit" disabled>Rotate credentials`) {
		t.Errorf("dashboard within the grace lacks %q and a disabled button", want)
	}
	before := redistest.Dump(t, f.r)
	resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session)
	if resp.status != http.StatusTooManyRequests || !strings.Contains(resp.body, want) {
		t.Fatalf("second click within the grace: got %d, want 429 saying %q: %s", resp.status, want, resp.body)
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Error("a refused click changed Redis")
	}
	if q := f.queued(tasks.QueueInteractive); len(q) != 1 {
		t.Errorf("got %d tasks queued, want the first click's only", len(q))
	}
}

func TestCustomerDailyCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withCustomerLimits(2, false))
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	for i, cred := range []string{"cred-1", "cred-2"} {
		if resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session); resp.status != http.StatusSeeOther ||
			noticeOf(resp) == nil || noticeOf(resp).Value != "rotate" {
			t.Fatalf("click %d: got %d to %q, want a new rotation", i+1, resp.status, resp.header.Get("Location"))
		}
		f.finish("inst-1", cred)
		f.clock.Advance(time.Minute)
	}
	resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session)
	const want = "2 of 2 rotations today used. You can rotate again after 4 Mar 06:30:32 UTC."
	if resp.status != http.StatusTooManyRequests || !strings.Contains(resp.body, want) {
		t.Fatalf("third click: got %d, want 429 saying %q: %s", resp.status, want, resp.body)
	}
	if page := f.get("/dashboard", session).body; !strings.Contains(page, want) {
		t.Errorf("dashboard lacks %q", want)
	}
	// An operator's request is not counted against the customer's cap.
	if resp := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"]}`); resp.status != http.StatusAccepted {
		t.Errorf("operator rotation after the customer's cap: got %d: %s", resp.status, resp.body)
	}
}

// TestConcurrentClicksStartOneRotation presses the button many times at
// once: one rotation starts; the other presses join it.
func TestConcurrentClicksStartOneRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withCustomerLimits(3, true))
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	token := f.csrf(session)
	const clicks = 12
	var wg sync.WaitGroup
	statuses := make([]int, clicks)
	for i := range clicks {
		wg.Go(func() {
			statuses[i] = f.postForm("/dashboard/rotate", url.Values{"csrf_token": {token}}, session).status
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusSeeOther {
			t.Errorf("click %d: got %d, want 303 (started or joined)", i, st)
		}
	}
	if q := f.queued(tasks.QueueInteractive); len(q) != 1 {
		t.Errorf("%d clicks at once queued %d rotations, want 1", clicks, len(q))
	}
	if n, _, err := f.st.CustomerRotations(context.Background(), "inst-1"); err != nil || n != 1 {
		t.Errorf("customer rotations counted: %d (%v), want 1", n, err)
	}
}

func TestRotationRefusedBeyondMaxPrevious(t *testing.T) {
	t.Parallel()
	f := newFixtureWithStore(t, []store.Option{store.WithMaxPrevious(2)})
	f.register("inst-1", "cred-0")
	f.register("inst-2", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	f.rotate("inst-1", "rot-2", "cred-2", 2*time.Hour)
	before := redistest.Dump(t, f.r)
	resp := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-2","inst-1"]}`)
	if resp.status != http.StatusConflict || !strings.Contains(resp.body, "REKEY_MAX_PREVIOUS") || !strings.Contains(resp.body, "inst-1") {
		t.Fatalf("rotation of a capped instance: got %d, want 409 naming inst-1 and REKEY_MAX_PREVIOUS: %s", resp.status, resp.body)
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Error("a refused rotation request changed Redis")
	}
	// The customer's page says when the cap lets a rotation through (the
	// first old credential's revoke time), and disables the button.
	session := f.login("inst-1")
	page := f.get("/dashboard", session).body
	when := f.clock.Now().Add(2 * time.Hour).UTC().Format("15:04:05 UTC")
	if !strings.Contains(page, "You can rotate again after "+when+", when the next one is revoked.") ||
		!strings.Contains(page, `id="rotate" aria-describedby="rotate-help rotate-limit" disabled`) {
		t.Errorf("capped instance's dashboard does not say when it can rotate again (%s), or its button is enabled", when)
	}
	click := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session)
	if click.status != http.StatusTooManyRequests || !strings.Contains(click.body, "after "+when) {
		t.Errorf("capped instance's click: %d, want 429 saying after %s: %.300s", click.status, when, click.body)
	}
	var res struct{ Enqueued, Refused int }
	resp = f.api(http.MethodPost, "/api/v1/rotations", `{"all":true}`)
	resp.json(t, &res)
	if resp.status != http.StatusAccepted || res.Enqueued != 1 || res.Refused != 1 {
		t.Errorf(`{"all":true}: got %d %+v, want 202 with inst-2 enqueued and inst-1 refused`, resp.status, res)
	}
}
