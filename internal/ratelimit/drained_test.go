package ratelimit_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
)

// TestA429PauseEndsWithOneCallNotABurst plays an account that another client
// of the partner keeps drained: Heroku's bucket holds one call and does not
// refill, so every later call is answered 429 without Retry-After. Sixteen
// workers of one process push to sixteen instances through the real client,
// over HTTP, for about four pauses. A 429 says Heroku has no token left;
// when the pause ends, the budget must start from there, one call at its
// rate, not with the burst it saved up while paused: a burst sent into a
// bucket that said it was empty is a burst of 429s after every pause, each
// one a rotation's wait spent (handlers' maxPlatformWaits).
func TestA429PauseEndsWithOneCallNotABurst(t *testing.T) {
	t.Parallel()
	const workers = 16
	fake := herokufake.New(herokufake.WithBucket(1, 1, time.Hour))
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	r := redistest.New(t)
	const pause = 800 * time.Millisecond
	p := ratelimit.Params{PerHour: perSecond(10), Burst: 10, LowWater: -1,
		Backoff: pause, MaxBackoff: pause, MaxWait: 10 * time.Second, HoldRefresh: 20 * time.Millisecond}
	hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
		heroku.WithLimiter(newProcess(t, r, p)),
		heroku.WithV1Credentials(herokufake.DefaultManifestID, secret.New(herokufake.DefaultManifestPassword)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range workers {
		id := fmt.Sprintf("inst-%02d", i)
		if err := fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, HerokuID: fmt.Sprintf("app%02d@heroku.com", i),
			ConfigVars: []string{"MYADDON_URL"}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*pause+pause/2)
	defer cancel()
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			target := heroku.Target{AddonID: fmt.Sprintf("inst-%02d", i), APIVersion: "v1",
				HerokuID: fmt.Sprintf("app%02d@heroku.com", i)}
			for ctx.Err() == nil {
				_ = hc.UpdateConfig(ctx, target, []heroku.ConfigVar{{Name: "MYADDON_URL",
					Value: secret.New(fmt.Sprintf("postgres://u:p%02d@db.example/d", i))}})
			}
		})
	}
	wg.Wait()
	limited := fake.Stats().RateLimited
	// The first burst goes before any 429 is known (up to the burst less
	// the reserve); after it, each pause may end with one call, and the
	// 429s of calls already under way change nothing.
	const want = 8 + 6
	t.Logf("Heroku answered %d 429s in %s of pauses of %s", limited, 4*pause+pause/2, pause)
	if limited > want {
		t.Errorf("Heroku answered %d 429s to an account it said was empty, want at most %d: "+
			"every pause ended with a burst of calls", limited, want)
	}
}
