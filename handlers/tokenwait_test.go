package handlers_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/retry"
)

// tokenEndpoint429 answers every token call 429 (with retryAfter, when
// set), counts them and the PATCHes, and passes the rest to the fake.
type tokenEndpoint429 struct {
	g          *rig
	retryAfter string
	tokens     atomic.Int32
	patches    atomic.Int32
}

func (h *tokenEndpoint429) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/oauth/token":
		h.tokens.Add(1)
		if h.retryAfter != "" {
			w.Header().Set("Retry-After", h.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"id":"rate_limit","message":"Your account reached the API rate limit"}`))
		return
	case r.Method == http.MethodPatch:
		h.patches.Add(1)
	}
	h.g.fake.ServeHTTP(w, r)
}

// The token endpoint answers 429 to every refresh of an expired access
// token. Each run waits without failing, but longer than the last, up to a
// cap; only the first run spends a PATCH (answered 401): later runs know
// the token expired and refresh first. Once the rotation's waits are used
// up, the 429 fails the run like any transient error, so asynq's retries,
// with their back-off and their limit, end it.
func TestTokenEndpoint429sBackOffAndEnd(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	h := &tokenEndpoint429{g: g}
	g.useHeroku(t, h, 5*time.Second)
	g.fake.ExpireAccessTokens()
	var waits []time.Duration
	var err error
	for range 20 {
		err = g.run(rotateTask(t, "inst-1", "rot-1"))
		var later *retry.Later
		if !errors.As(err, &later) {
			break
		}
		waits = append(waits, later.After)
	}
	t.Logf("waits %v, then %v; %d token calls, %d PATCHes", waits, err, h.tokens.Load(), h.patches.Load())
	if len(waits) < 5 || waits[0] < time.Second || waits[len(waits)-1] > 15*time.Minute {
		t.Fatalf("waits %v; want several, from seconds, capped", waits)
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] < waits[i-1] || (waits[i] == waits[i-1] && waits[i] < 2*time.Minute) {
			t.Errorf("wait %d is %s after %s; want each longer than the last until the cap", i, waits[i], waits[i-1])
		}
	}
	if err == nil || retry.IsLater(err) || !retry.IsFailure(err) || isPermanent(err) {
		t.Errorf("run after %d waits: %v; want a transient failure for asynq to retry", len(waits), err)
	}
	if n := h.patches.Load(); n != 1 {
		t.Errorf("%d PATCHes; want 1: once Heroku refused the token, no run pushes with it again", n)
	}
}

// A Retry-After from the token endpoint is honoured: the wait is never
// shorter than it asks.
func TestTokenEndpoint429HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.useHeroku(t, &tokenEndpoint429{g: g, retryAfter: "120"}, 5*time.Second)
	g.fake.ExpireAccessTokens()
	var later *retry.Later
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); !errors.As(err, &later) || later.After < 2*time.Minute {
		t.Errorf("run: %v; want a wait of at least Retry-After's 2 minutes", err)
	}
}
