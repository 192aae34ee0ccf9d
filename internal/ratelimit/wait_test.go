package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

func TestMaxWaitReturnsDelay(t *testing.T) {
	t.Parallel()
	t.Run("pause longer than MaxWait", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		p := ratelimit.Params{PerHour: perSecond(20), MaxWait: 200 * time.Millisecond, Backoff: time.Second}
		a, b := newProcess(t, r, p), newProcess(t, r, p)
		a.Observe("addon", -1, http.StatusTooManyRequests)
		for _, l := range []process{a, b} {
			res := receive(t, waitAsync(t.Context(), l.Limiter, "addon"), time.Second)
			if d := delayOf(t, res.err); d <= 700*time.Millisecond || d > time.Second {
				t.Errorf("RetryIn %s, want about the 1s pause", d)
			}
			if res.took >= p.MaxWait {
				t.Errorf("Wait took %s to see a pause, want less than MaxWait %s", res.took, p.MaxWait)
			}
		}
	})
	t.Run("queue longer than MaxWait", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		p := ratelimit.Params{PerHour: perSecond(10), Burst: 3, Reserve: 2, MaxWait: 250 * time.Millisecond}
		l := newProcess(t, r, p)
		var results []<-chan waitResult
		for range 10 {
			results = append(results, waitAsync(t.Context(), l.Limiter, "addon"))
		}
		granted := 0
		for _, ch := range results {
			res := receive(t, ch, 2*time.Second)
			if res.took > p.MaxWait+100*time.Millisecond {
				t.Errorf("Wait took %s, MaxWait is %s", res.took, p.MaxWait)
			}
			if res.err == nil {
				granted++
				continue
			}
			if d := delayOf(t, res.err); d < p.MaxWait-res.took || d > 10*l.Interval() {
				t.Errorf("RetryIn %s after %s, want the rest of a queue of 10 at %s", d, res.took, l.Interval())
			}
		}
		if granted < 2 || granted > 4 {
			t.Errorf("%d of 10 callers got a token within %s at 10/s, want 2 to 4", granted, p.MaxWait)
		}
	})
	t.Run("pause learned while waiting", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		p := ratelimit.Params{PerHour: 3600, Burst: 3, Reserve: 2, MaxWait: 2 * time.Second, Backoff: 5 * time.Second}
		a, b := newProcess(t, r, p), newProcess(t, r, p)
		if err := b.Wait(t.Context(), "addon"); err != nil {
			t.Fatal(err)
		}
		waiting := waitAsync(t.Context(), b.Limiter, "addon") // its token is a second away
		eventually(t, time.Second, "Wait never queued", func() bool { _, n := ratelimit.Pending(b.Limiter); return n == 1 })
		a.Observe("addon", -1, http.StatusTooManyRequests)
		res := receive(t, waiting, 3*time.Second)
		if d := delayOf(t, res.err); d < 3*time.Second || d > 5*time.Second {
			t.Errorf("RetryIn %s, want the rest of the 5s pause", d)
		}
		if res.took >= p.MaxWait {
			t.Errorf("Wait took %s, want it to give up once it learned of the pause", res.took)
		}
	})
}

// TestCancelLeavesNothingBehind runs alone, so that it can count goroutines.
func TestCancelLeavesNothingBehind(t *testing.T) {
	r := redistest.New(t)
	l := newProcess(t, r, ratelimit.Params{PerHour: perSecond(20), Backoff: 10 * time.Second})
	l.Observe("addon", -1, http.StatusTooManyRequests) // nobody gets a token for 10s
	goroutines := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(t.Context())
	var results []<-chan waitResult
	for range 20 {
		results = append(results, waitAsync(ctx, l.Limiter, "addon"))
	}
	short, stop := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer stop()
	results = append(results, waitAsync(short, l.Limiter, "addon"))
	eventually(t, time.Second, "not every Wait queued", func() bool { _, n := ratelimit.Pending(l.Limiter); return n >= 20 })
	cancel()

	for i, ch := range results {
		want := context.Canceled
		if i == len(results)-1 {
			want = context.DeadlineExceeded
		}
		if res := receive(t, ch, time.Second); !errors.Is(res.err, want) {
			t.Errorf("Wait returned %v, want %v", res.err, want)
		}
	}
	eventually(t, time.Second, "a dispatcher or waiter outlived its callers", func() bool {
		buckets, waiters := ratelimit.Pending(l.Limiter)
		return buckets == 0 && waiters == 0 && runtime.NumGoroutine() <= goroutines
	})
	if s := l.Stats().Background; s.Canceled != 21 || s.Granted != 0 {
		t.Errorf("Stats counted %d canceled and %d granted, want 21 and 0", s.Canceled, s.Granted)
	}
}

// TestEndedContextIsCounted: a Wait or WaitN called with a context that has
// already ended returns at once, and Stats counts it as canceled like one
// that ended while waiting.
func TestEndedContextIsCounted(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := newProcess(t, r, ratelimit.Params{PerHour: perSecond(20)})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Wait(ctx, "addon"); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait returned %v, want context.Canceled", err)
	}
	if err := l.WaitN(ctx, "addon", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitN returned %v, want context.Canceled", err)
	}
	if s := l.Stats().Background; s.Canceled != 2 || s.Granted != 0 {
		t.Errorf("Stats counted %d canceled and %d granted, want 2 and 0", s.Canceled, s.Granted)
	}
}

func TestCloseReleasesWaiters(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := newProcess(t, r, ratelimit.Params{PerHour: perSecond(20), Backoff: 10 * time.Second})
	l.Observe("addon", -1, http.StatusTooManyRequests)
	waiting := waitAsync(t.Context(), l.Limiter, "addon")
	eventually(t, time.Second, "Wait never queued", func() bool { _, n := ratelimit.Pending(l.Limiter); return n == 1 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if res := receive(t, waiting, time.Second); !errors.Is(res.err, ratelimit.ErrClosed) {
		t.Errorf("waiting Wait returned %v, want ErrClosed", res.err)
	}
	if err := l.Wait(t.Context(), "addon"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("Wait after Close returned %v, want ErrClosed", err)
	}
}
