package ratelimit_test

import (
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// TestOneCallerAtATimeAsksOncePerToken plays the pacing feeder: one caller
// at a time, each arriving after the last was served, on a spent budget.
// The limiter remembers what Redis said between callers, so each token
// costs one request (and a look at the shared pause now and then), not a
// refusal first.
func TestOneCallerAtATimeAsksOncePerToken(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	p := ratelimit.Params{PerHour: perSecond(20), Burst: 3, Reserve: 1, HoldRefresh: time.Minute}
	l := newProcess(t, r, p)
	wait := func(n int) {
		for range n {
			if err := l.Wait(ratelimit.WithClass(t.Context(), ratelimit.Background), "addon"); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait(3) // the burst; the connection's set-up and the script's loading
	before := l.commands.n.Load()
	const calls = 10
	wait(calls)
	if d := l.Stats().Denials; d > 0 {
		t.Errorf("%d refusals for callers one at a time", d)
	}
	if n := l.commands.n.Load() - before; n != calls {
		t.Errorf("%d Redis commands for %d tokens, want one each", n, calls)
	}
}

// TestWaitNTakesTokensTogether: the feeder's pairs cost one request to
// Redis each, and come at the budget's pace.
func TestWaitNTakesTokensTogether(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	p := ratelimit.Params{PerHour: perSecond(20), Burst: 3, Reserve: 1, HoldRefresh: time.Minute}
	l := newProcess(t, r, p)
	ctx := ratelimit.WithClass(t.Context(), ratelimit.Background)
	if err := l.WaitN(ctx, "addon", 2); err != nil { // the burst
		t.Fatal(err)
	}
	before, start := l.commands.n.Load(), time.Now()
	const pairs = 5
	for range pairs {
		if err := l.WaitN(ctx, "addon", 2); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.commands.n.Load() - before; n != pairs {
		t.Errorf("%d Redis commands for %d pairs, want one each", n, pairs)
	}
	if took, want := time.Since(start), time.Duration(2*pairs-1)*l.Interval(); took < want {
		t.Errorf("%d pairs took %s, want at least %s at the budget's pace", pairs, took, want)
	}
	if err := l.WaitN(ctx, "addon", 3); err == nil {
		t.Error("WaitN beyond the background burst was accepted")
	}
}
