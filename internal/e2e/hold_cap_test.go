package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// rotateAll rotates every sample and waits until every rotation is done.
func (w *world) rotateAll(samples []sandbox.Sample) {
	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.ID
	}
	res := w.rotate(ids...)
	if b := w.waitBatch(res.BatchID, 3*time.Minute); b.Succeeded != int64(len(ids)) {
		w.t.Fatalf("batch: %d of %d rotated, failures %v", b.Succeeded, len(ids), b.Failures)
	}
}

// revokedAfterGrace checks that each sample's provisioned credential was
// revoked, not before its fixed grace, and returns when.
func revokedAfterGrace(t *testing.T, w *world, samples []sandbox.Sample) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for _, s := range samples {
		old, err := w.store.Credential(context.Background(), s.ID, s.Provisioned)
		at, ok := w.sb.Demo.RevokedAt(s.Provisioned)
		switch {
		case err != nil || !ok:
			t.Fatalf("%s: not revoked (%v)", s.ID, err)
		case at.Before(old.RevokeAt):
			t.Errorf("%s: revoked at %s, before its grace ended at %s (I2)", s.ID, at, old.RevokeAt)
		}
		out[s.ID] = at
	}
	return out
}

// TestHoldUsageUnsupportedRevokesAsBefore: an issuer without the usage
// endpoint (404) gets exactly the revocations it got before holds
// existed: at the grace, no hold, no hold event.
func TestHoldUsageUnsupportedRevokesAsBefore(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{demo: []issuer.DemoOption{issuer.WithoutUsage()}})
	samples := w.provision(20, sandbox.DefaultMix)
	w.startWorker(workerParams{holds: testHolds(time.Minute, false)})
	for _, s := range samples {
		w.sb.Demo.UseUntil(s.Provisioned, time.Now().Add(time.Hour), "never asked")
	}
	w.rotateAll(samples)
	w.waitRevoked(30 * time.Second)
	revokedAfterGrace(t, w, samples)
	if n := countEvents(t, w, store.EventRevocationHeld); n != 0 {
		t.Errorf("%d hold events with an issuer that does not report usage", n)
	}
}

// TestHoldCapRevokes: a credential in use for ever is held until the cap
// (REKEY_HOLD_MAX past the grace) and then revoked, with a hold_capped
// event, by default.
func TestHoldCapRevokes(t *testing.T) {
	t.Parallel()
	const capAfter = 2 * time.Second
	w := newWorld(t, worldParams{})
	samples := w.provision(5, sandbox.Mix{})
	w.startWorker(workerParams{holds: testHolds(capAfter, false)})
	for _, s := range samples {
		w.sb.Demo.UseUntil(s.Provisioned, time.Now().Add(time.Hour), "one-off dyno run.1")
	}
	w.rotateAll(samples)
	w.waitRevoked(30 * time.Second)
	for _, s := range samples {
		old, _ := w.store.Credential(context.Background(), s.ID, s.Provisioned)
		at, _ := w.sb.Demo.RevokedAt(s.Provisioned)
		if late := at.Sub(old.RevokeAt); late < capAfter || late > capAfter+testRecheck+releaseSlack {
			t.Errorf("%s: revoked %s after its grace, want at the cap (%s)", s.ID, late, capAfter)
		}
	}
	if n := countEvents(t, w, store.EventHoldCapped); n != len(samples) {
		t.Errorf("%d hold_capped events, want %d", n, len(samples))
	}
}

// TestHoldCapKeepsHolding: with REKEY_HOLD_AT_CAP=hold a credential still
// in use stays valid past the cap, marked capped; an operator's release
// and the customer's emergency revoke still revoke it.
func TestHoldCapKeepsHolding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(2, sandbox.Mix{})
	w.startWorker(workerParams{holds: testHolds(time.Second, true)})
	for _, s := range samples {
		w.sb.Demo.UseUntil(s.Provisioned, time.Now().Add(time.Hour), "ci.example.com")
	}
	w.rotateAll(samples)
	waitFor(t, 30*time.Second, "capped holds", func() (bool, string) {
		holds, err := w.store.Holds(ctx, 10)
		capped := 0
		for _, h := range holds {
			if h.Capped {
				capped++
			}
		}
		return capped == len(samples), fmt.Sprintf("%+v %v", holds, err)
	})
	time.Sleep(3 * testRecheck) // rechecks past the cap keep holding
	for _, s := range samples {
		if !w.sb.Demo.Valid(s.Provisioned) {
			t.Fatalf("%s: revoked past the cap with REKEY_HOLD_AT_CAP=hold", s.ID)
		}
	}
	// An operator releases the first (what `rekey holds release` does).
	op := samples[0]
	if err := w.store.RequestHoldRelease(ctx, op.ID, op.Provisioned, "an operator"); err != nil {
		t.Fatal(err)
	}
	_ = w.insp.RunTask(tasks.QueueRevoke, tasks.RevokeTaskID(op.ID, op.Provisioned))
	// The customer's emergency revoke of the second (the dashboard's).
	cu := samples[1]
	if _, err := w.store.ExpediteRevocation(ctx, cu.ID, cu.Provisioned, "customer"); err != nil {
		t.Fatal(err)
	}
	_ = w.insp.RunTask(tasks.QueueRevoke, tasks.RevokeTaskID(cu.ID, cu.Provisioned))
	w.waitRevoked(10 * time.Second)
	if n := countEvents(t, w, store.EventHoldReleased); n != 2 {
		t.Errorf("%d hold_released events, want 2", n)
	}
	if sum, _ := w.store.HoldStats(ctx); sum.Held != 0 {
		t.Errorf("%d holds left after release", sum.Held)
	}
}

// hostileUsage is an issuer whose usage answers misbehave; every other
// call goes to the sandbox's demo issuer.
func hostileUsage(t *testing.T, w *world, answer func(http.ResponseWriter, *http.Request)) string {
	t.Helper()
	target, _ := url.Parse(w.cfg.IssuerURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/usage") {
			answer(rw, r)
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHoldHostileUsage: garbage JSON, a 10 MB body and a redirect are no
// evidence (never held: no hold event); a last use far in the future
// counts as now, so it holds only until the cap. None revokes before the
// grace, and every one is revoked.
func TestHoldHostileUsage(t *testing.T) {
	t.Parallel()
	const capAfter = 2 * time.Second
	cases := map[string]struct {
		answer func(http.ResponseWriter, *http.Request)
		held   bool
	}{
		"garbage": {answer: func(rw http.ResponseWriter, _ *http.Request) {
			_, _ = rw.Write([]byte(`{"last_used_at": [1,2,`))
		}},
		"10MB": {answer: func(rw http.ResponseWriter, _ *http.Request) {
			_, _ = rw.Write([]byte(`{"last_used_by":"` + strings.Repeat("x", 10<<20) + `"}`))
		}},
		"redirect": {answer: func(rw http.ResponseWriter, r *http.Request) {
			http.Redirect(rw, r, "http://203.0.113.9/usage", http.StatusTemporaryRedirect)
		}},
		"future": {held: true, answer: func(rw http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(rw).Encode(map[string]string{"last_used_at": "2999-01-01T00:00:00Z"})
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, worldParams{})
			samples := w.provision(3, sandbox.Mix{})
			w.startWorker(workerParams{holds: testHolds(capAfter, false), issuerURL: hostileUsage(t, w, c.answer)})
			w.rotateAll(samples)
			w.waitRevoked(30 * time.Second)
			for _, s := range samples {
				old, _ := w.store.Credential(context.Background(), s.ID, s.Provisioned)
				at, _ := w.sb.Demo.RevokedAt(s.Provisioned)
				late := at.Sub(old.RevokeAt)
				switch {
				case late < 0:
					t.Errorf("%s: revoked %s before its grace", s.ID, -late)
				case c.held && late < capAfter:
					t.Errorf("%s: revoked %s after the grace, before the cap %s", s.ID, late, capAfter)
				}
			}
			if held := countEvents(t, w, store.EventRevocationHeld); (held > 0) != c.held {
				t.Errorf("%d hold events, want held=%t", held, c.held)
			}
		})
	}
}
