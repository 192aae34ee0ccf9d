package ratelimit_test

import (
	"errors"
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

// TestScopeInstanceObeysAnAccountWide429 plays a Heroku whose budget is the
// account's while rekey bets on one per instance (REKEY_RATE_SCOPE=instance):
// two processes, two workers each, push to 40 instances through the real
// client, over HTTP, against a fake Heroku whose account bucket holds 4
// calls and does not refill during the test. The first 429 pauses every
// instance's calls in both processes, so the instances not called yet wait
// (a *DelayError: the worker puts its task off) instead of each earning a
// 429 of its own before it pauses. Only the calls already under way when the
// first 429 came, and those of the other process before it next reads the
// pause (HoldRefresh), may be refused too.
func TestScopeInstanceObeysAnAccountWide429(t *testing.T) {
	t.Parallel()
	const instances, capacity, workers = 40, 4, 4
	fake := herokufake.New(herokufake.WithBucket(capacity, 1, time.Hour))
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	r := redistest.New(t)
	p := ratelimit.Params{PerHour: perSecond(20), Scope: ratelimit.ScopeInstance, LowWater: -1,
		Backoff: 30 * time.Second, MaxBackoff: time.Minute, MaxWait: 100 * time.Millisecond,
		HoldRefresh: 20 * time.Millisecond}
	var clients []*heroku.Client
	for range 2 {
		hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
			heroku.WithLimiter(newProcess(t, r, p)),
			heroku.WithV1Credentials(herokufake.DefaultManifestID, secret.New(herokufake.DefaultManifestPassword)))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, hc)
	}
	ids := make(chan int, instances)
	for i := range instances {
		id := fmt.Sprintf("inst-%02d", i)
		if err := fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, HerokuID: fmt.Sprintf("app%02d@heroku.com", i),
			ConfigVars: []string{"MYADDON_URL"}}); err != nil {
			t.Fatal(err)
		}
		ids <- i
	}
	close(ids)

	var mu sync.Mutex
	var pushed, refused, putOff int
	var wg sync.WaitGroup
	for w := range workers {
		hc := clients[w%len(clients)]
		wg.Go(func() {
			for i := range ids {
				target := heroku.Target{AddonID: fmt.Sprintf("inst-%02d", i), APIVersion: "v1",
					HerokuID: fmt.Sprintf("app%02d@heroku.com", i)}
				err := hc.UpdateConfig(t.Context(), target, []heroku.ConfigVar{{Name: "MYADDON_URL",
					Value: secret.New(fmt.Sprintf("postgres://u:p%02d@db.example/d", i))}})
				mu.Lock()
				switch _, delayed := errors.AsType[*ratelimit.DelayError](err); {
				case err == nil:
					pushed++
				case delayed:
					putOff++
				default:
					refused++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// A V1 update is a PUT and a GET reading the config back: the bucket's
	// calls may land as fewer pushes.
	answered := 0
	for _, c := range fake.Calls() {
		if c.Status != 429 {
			answered++
		}
	}
	limited := fake.Stats().RateLimited
	t.Logf("%d pushed, %d refused (Heroku answered %d calls, %d of them 429), %d put off by the pause",
		pushed, refused, answered+limited, limited, putOff)
	if answered != capacity {
		t.Errorf("Heroku answered %d calls, want the bucket's %d", answered, capacity)
	}
	if limited > 2*workers {
		t.Errorf("Heroku answered %d 429s to %d instances: each instance earned its own before it paused, "+
			"want at most %d (the calls under way when the first came)", limited, instances, 2*workers)
	}
	if pushed+refused+putOff != instances {
		t.Errorf("%d outcomes for %d instances", pushed+refused+putOff, instances)
	}
}
