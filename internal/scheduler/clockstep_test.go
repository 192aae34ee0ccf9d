package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redisclock"
	"github.com/rekeyhq/rekey/internal/store"
)

// The clock's machine has its time stepped by hours (an NTP correction,
// a VM resumed after a pause) between two measurements of Redis's clock.
// A sweep must not run on the stepped time: it read the hour of the day
// twelve hours off, found an instance inside a maintenance window that
// was closed, and enqueued its rotation, restarting its apps outside the
// hours their owner allowed (up to the cap of such instances a sweep).
func TestSweepAfterTheMachinesClockStepsKeepsToRedissClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	real := time.Now().UTC()
	// Closed now, open twelve hours on (and the hour either side of it).
	start := (real.Hour() + 11) % 24
	end := (start + 3) % 24
	if end == 0 {
		end = 24
	}
	win := store.Window{Start: start, End: end}
	w := newWorld(t, real.Add(-3*simPeriod))
	w.register(t, "inst") // due two periods ago
	w.set(real)

	var step atomic.Int64
	local := func() time.Time { return time.Now().Add(time.Duration(step.Load())) }
	clock, err := redisclock.New(redisclock.Params{Redis: w.st.Redis(), Local: local})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clock.Measure(ctx); err != nil {
		t.Fatal(err)
	}
	step.Store(int64(12 * time.Hour)) // before the next measurement

	p := simParams()
	p.Window, p.Interval, p.Now = &win, 20*time.Millisecond, clock.Now
	p.Measure = func(ctx context.Context) error { _, err := clock.Measure(ctx); return err }
	s := w.scheduler(t, p)
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(run) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if last, _ := w.st.LastSweep(ctx); last.Outcome != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a few sweeps more
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := w.queue.count(); n != 0 {
		t.Fatalf("%d rotation(s) enqueued at %s UTC, outside the window %s, on a machine clock stepped 12h ahead",
			n, time.Now().UTC().Format("15:04"), win)
	}
	last, err := w.st.LastSweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.Outcome != "swept" || last.At.Sub(time.Now()).Abs() > time.Minute {
		t.Fatalf("last sweep %+v; want one that ran, dated on Redis's clock", last)
	}
	in, err := w.st.Instance(ctx, "inst")
	if err != nil {
		t.Fatal(err)
	}
	if want := win.NextStart(time.Now()); in.NextRotationAt.Before(want) || in.NextRotationAt.After(want.Add(win.Length())) {
		t.Fatalf("next rotation %s; want it deferred into the window's next opening, from %s", in.NextRotationAt, want)
	}
}
