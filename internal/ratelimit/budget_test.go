package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

func TestProcessesShareOneBudget(t *testing.T) {
	t.Parallel()
	const rate, burst, reserve = 20, 4, 2
	tests := []struct {
		name  string
		class ratelimit.Class
		burst int // the most the class may take at once
	}{
		{"background", ratelimit.Background, burst - reserve},
		{"interactive", ratelimit.Interactive, burst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			p := ratelimit.Params{PerHour: perSecond(rate), Burst: burst, Reserve: reserve}
			procs := []process{newProcess(t, r, p), newProcess(t, r, p)}
			ctx, cancel := context.WithTimeout(ratelimit.WithClass(t.Context(), tt.class), 2*time.Second)
			defer cancel()

			granted, first, last := hammer(ctx, procs, 25)
			elapsed := last.Sub(first)

			// The class's burst, and one grant each interval: a window of
			// elapsed holds up to elapsed*rate+1 of those (its two ends
			// both count), so a last grant just before 2 s makes the 41st.
			// The window opens at the first grant, not before the callers
			// start: on a loaded machine their first round trip to Redis
			// may take a few intervals, which no limiter could have spent.
			bound := rate*elapsed.Seconds() + float64(tt.burst) + 1
			t.Logf("granted %d in %s; GCRA bound %.1f", granted, elapsed.Round(time.Millisecond), bound)
			if float64(granted) > bound {
				t.Errorf("granted %d tokens in %s, more than the budget's %.1f", granted, elapsed, bound)
			}
			if float64(granted) < 0.9*bound {
				t.Errorf("granted %d tokens in %s, less than 90%% of the budget's %.1f", granted, elapsed, bound)
			}
		})
	}
}

func TestInteractiveSkipsBackgroundWave(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	p := ratelimit.Params{PerHour: perSecond(10), Burst: 4, Reserve: 2}
	a, b := newProcess(t, r, p), newProcess(t, r, p)
	interval := a.Interval()

	wave, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		hammer(wave, []process{a, b}, 20)
	}()
	background := func() uint64 { return a.Stats().Background.Granted + b.Stats().Background.Granted }
	eventually(t, 5*time.Second, "the background wave never got going", func() bool { return background() >= 5 })

	ctx := ratelimit.WithClass(t.Context(), ratelimit.Interactive)
	for i := range 4 { // more than the reserve: the rest comes from the refill
		start := time.Now()
		if err := a.Wait(ctx, "addon"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*interval {
			t.Errorf("interactive call %d waited %s behind the wave, want at most %s", i, took, 2*interval)
		}
	}
	if _, waiting := ratelimit.Pending(a.Limiter); waiting == 0 {
		t.Error("no background caller was queued: the wave was not saturating")
	}
	stop()
	<-done
}

func TestRedisCallsPerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		procs int
	}{
		{"one process", 1},
		{"two processes", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			p := ratelimit.Params{PerHour: perSecond(50), Burst: 5}
			var procs []process
			for range tt.procs {
				procs = append(procs, newProcess(t, r, p))
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()

			granted, _, _ := hammer(ctx, procs, 100/tt.procs)
			var commands int64
			for _, p := range procs {
				commands += p.commands.n.Load()
			}
			perToken := float64(commands) / float64(granted)
			t.Logf("%d commands for %d tokens: %.2f per token", commands, granted, perToken)
			if granted == 0 || perToken >= 3 {
				t.Errorf("%d Redis commands for %d tokens, want fewer than 3 per token", commands, granted)
			}
		})
	}
}

func TestScopeInstanceSeparatesBudgets(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := newProcess(t, r, ratelimit.Params{
		// MaxWait well under the second a token takes at 3600/h, and well
		// over a round trip to Redis on a loaded machine.
		PerHour: 3600, Burst: 3, Reserve: 2, Scope: ratelimit.ScopeInstance, MaxWait: 500 * time.Millisecond,
	})
	ctx := t.Context()
	if err := l.Wait(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	delayOf(t, l.Wait(ctx, "a")) // a's background burst of one is spent
	if err := l.Wait(ctx, "b"); err != nil {
		t.Errorf("b waits on a's budget: %v", err)
	}
	if err := l.Wait(ctx, ""); err == nil {
		t.Error("Wait without an add-on id succeeded with a per-instance budget")
	}
}
