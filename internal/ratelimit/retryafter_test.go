package ratelimit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
)

// TestA429sRetryAfterPausesTheBudget plays a front before Heroku that
// answers every push 429 with Retry-After: 2 (seconds). The budget's own
// pause after a 429 starts far shorter and doubles; it must last at least
// what Retry-After asks (up to MaxBackoff), or every process calls again
// before then, and each 429 so earned is one more rotation's wait spent.
func TestA429sRetryAfterPausesTheBudget(t *testing.T) {
	t.Parallel()
	var limited atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		limited.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"id":"rate_limit","message":"Your account reached the API rate limit"}`))
	}))
	t.Cleanup(srv.Close)
	r := redistest.New(t)
	p := ratelimit.Params{PerHour: perSecond(50), LowWater: -1, Backoff: 100 * time.Millisecond,
		MaxBackoff: 5 * time.Second, MaxWait: 10 * time.Second, HoldRefresh: 20 * time.Millisecond}
	hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
		heroku.WithLimiter(newProcess(t, r, p)), heroku.WithV1Credentials("myaddon", secret.New("manifest-password-1")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	target := heroku.Target{AddonID: "inst-1", APIVersion: "v1", HerokuID: "app1@heroku.com"}
	for ctx.Err() == nil {
		_ = hc.UpdateConfig(ctx, target, []heroku.ConfigVar{{Name: "MYADDON_URL", Value: secret.New("postgres://u:p@db.example/d")}})
	}
	// One at the start, one when the 2 s pause ends.
	t.Logf("%d calls answered 429 with Retry-After: 2 in 2.5 s", limited.Load())
	if n := limited.Load(); n > 2 {
		t.Errorf("%d calls answered 429 with Retry-After: 2 in 2.5 s, want at most 2: the pause ignored Retry-After", n)
	}
}
