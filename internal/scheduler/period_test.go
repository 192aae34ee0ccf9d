package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/scheduler"
)

// rotatedFleet registers n instances on a world whose clock runs with
// period, moves two periods on so that every one is due, and lets the
// clock rotate each once. It returns how many rotations were enqueued.
func rotatedFleet(t *testing.T, w *world, clock *scheduler.Scheduler, period time.Duration, n int) int {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		w.register(t, fmt.Sprintf("fleet-%02d", i))
	}
	w.advance(2 * period)
	for range 10 {
		if _, err := clock.Sweep(ctx, w.now()); err != nil {
			t.Fatal(err)
		}
		w.work(t, 4)
		w.advance(time.Minute)
	}
	if got := w.queue.count(); got != n {
		t.Fatalf("%d rotations enqueued for %d overdue instances, want one each", got, n)
	}
	return n
}

// periodParams are the simulation's clock settings with period p.
func periodParams(p time.Duration) scheduler.Params {
	params := simParams()
	params.Period = p
	return params
}

// An operator types `rekey scheduler` instead of `rekey scheduler status`
// in a shell with a staging .env (REKEY_ROTATION_PERIOD=1h) while the
// production clock runs with 90 days, and presses Ctrl-C. The production
// clock must go on as before: the instances it just rotated are not due
// again for weeks, so three hours of its sweeps enqueue nothing.
func TestClockStartedWithAnotherPeriodChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	prodParams := periodParams(2160 * time.Hour)
	prod := w.scheduler(t, prodParams)
	if err := prod.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const fleet = 20
	rotated := rotatedFleet(t, w, prod, prodParams.Period, fleet)

	stagingParams := periodParams(time.Hour)
	staging := w.scheduler(t, stagingParams)
	err := staging.Start(ctx) // and Ctrl-C: it never sweeps
	if err == nil {
		t.Error("a clock with REKEY_ROTATION_PERIOD=1h started while 2160h was published")
	} else {
		for _, want := range []string{"2160h (90 days)", "is 1h;", "rekey scheduler --set-period"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal does not say %q: %v", want, err)
			}
		}
	}
	if p, err := w.st.SchedulePolicy(ctx); err != nil || p.Period != prodParams.Period {
		t.Errorf("published period %s (%v) after the second clock, want %s", p.Period, err, prodParams.Period)
	}

	for range 180 {
		w.advance(time.Minute)
		if _, err := prod.Sweep(ctx, w.now()); err != nil {
			t.Fatal(err)
		}
		w.work(t, 4)
	}
	if extra := w.queue.count() - rotated; extra != 0 {
		t.Fatalf("the production clock enqueued %d rotations in the three hours after the second clock, want none", extra)
	}
	for i := range fleet {
		id := fmt.Sprintf("fleet-%02d", i)
		if n := len(w.heroku.times(id)); n != 1 {
			t.Errorf("%s pushed %d times, want once", id, n)
		}
	}
}

// A period changed on purpose (--set-period) replaces the published one
// and moves every due time; a clock still running with the old period
// then enqueues nothing, and says which periods differ, until it runs with
// the new one.
func TestClockWhosePeriodWasReplacedEnqueuesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	oldParams := periodParams(24 * time.Hour)
	old := w.scheduler(t, oldParams)
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := rotatedFleet(t, w, old, oldParams.Period, 10)

	newParams := periodParams(time.Hour)
	newParams.SetPeriod = true
	if err := w.scheduler(t, newParams).Start(ctx); err != nil {
		t.Fatalf("--set-period: %v", err)
	}
	if p, _ := w.st.SchedulePolicy(ctx); p.Period != time.Hour {
		t.Fatalf("published period %s after --set-period, want 1h", p.Period)
	}
	w.advance(3 * time.Hour) // every instance due under the new period
	for range 3 {
		res, err := old.Sweep(ctx, w.now())
		if err != nil || res.Outcome != scheduler.PeriodMismatch || res.Published != time.Hour || res.Enqueued != 0 {
			t.Fatalf("sweep of the clock with the old period = %+v, %v; want %s naming 1h, nothing enqueued",
				res, err, scheduler.PeriodMismatch)
		}
		w.advance(time.Minute)
	}
	if last, _ := w.st.LastSweep(ctx); last.Outcome != scheduler.PeriodMismatch || w.queue.count() != rotated {
		t.Fatalf("last sweep %q, %d rotations enqueued; want %s, %d", last.Outcome, w.queue.count(),
			scheduler.PeriodMismatch, rotated)
	}
	// Restarted without the flag, the old clock refuses to start; with
	// the new period it sweeps what is due.
	var perr *scheduler.PeriodError
	if err := w.scheduler(t, oldParams).Start(ctx); !errors.As(err, &perr) || perr.Published != time.Hour ||
		perr.Own != 24*time.Hour {
		t.Fatalf("restart with the old period: %v; want a *PeriodError naming 1h and 24h", err)
	}
	cur := w.scheduler(t, simParams())
	if err := cur.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := cur.Sweep(ctx, w.now()); err != nil || res.Enqueued != 10 {
		t.Fatalf("sweep with the published period = %+v, %v; want the 10 due instances", res, err)
	}
}

// The period is changed the usual way: REKEY_ROTATION_PERIOD set in the
// clock's environment and the clock restarted. The old clock stopped
// cleanly, so the new one publishes its period without --set-period. One
// that died without stopping cleanly holds its period until a sweep
// interval past the sweep it had planned.
func TestClockRestartedWithANewPeriodPublishesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	oldParams := periodParams(24 * time.Hour)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.scheduler(t, oldParams).Run(runCtx) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if last, _ := w.st.LastSweep(ctx); !last.At.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the clock never swept")
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	newParams := periodParams(48 * time.Hour)
	if err := w.scheduler(t, newParams).Start(ctx); err != nil {
		t.Fatalf("a clock restarted with a new period after the old one stopped: %v", err)
	}
	if p, _ := w.st.SchedulePolicy(ctx); p.Period != 48*time.Hour {
		t.Fatalf("published period %s, want 48h", p.Period)
	}

	// The 48h clock dies without stopping cleanly after a sweep.
	crashed := w.scheduler(t, newParams)
	if _, err := crashed.Sweep(ctx, w.now()); err != nil {
		t.Fatal(err)
	}
	third := periodParams(72 * time.Hour)
	var perr *scheduler.PeriodError
	if err := w.scheduler(t, third).Start(ctx); !errors.As(err, &perr) {
		t.Fatalf("a clock with 72h right after the 48h one swept: %v; want a *PeriodError", err)
	}
	w.advance(2*newParams.Interval + time.Millisecond) // the planned sweep, and an interval more
	if err := w.scheduler(t, third).Start(ctx); err != nil {
		t.Fatalf("a clock with 72h once the 48h one missed its sweep: %v", err)
	}
}

// Two clocks run with 90 days; one of them is restarted (stopped cleanly,
// a deploy). While the other still runs, a clock started from another
// environment (1h) is refused as before: the stopped clock's clean stop
// forgot the next planned sweep, whichever clock had planned it, and let
// the 1h clock replace the fleet's period while the 90-day one ran on,
// enqueueing nothing from then on. Once the last 90-day clock stops
// cleanly, a clock with a new period publishes it.
func TestAClockStoppingBesideARunningOneKeepsThePeriodGuarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	prodParams := periodParams(2160 * time.Hour)
	run := func() (stop func()) {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		before, _ := w.st.LastSweep(ctx)
		go func() { done <- w.scheduler(t, prodParams).Run(runCtx) }()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if last, _ := w.st.LastSweep(ctx); !last.At.IsZero() && last != before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the clock never swept")
			}
		}
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	stopA := run()
	w.advance(time.Second) // the second clock's sweep is the last one
	stopB := run()
	stopB()
	var perr *scheduler.PeriodError
	if err := w.scheduler(t, periodParams(time.Hour)).Start(ctx); !errors.As(err, &perr) {
		t.Errorf("a 1h clock started while a 90-day clock runs, another just stopped: %v; want a *PeriodError", err)
	}
	if p, _ := w.st.SchedulePolicy(ctx); p.Period != prodParams.Period {
		t.Fatalf("published period %s, want %s", p.Period, prodParams.Period)
	}
	stopA()
	if err := w.scheduler(t, periodParams(720*time.Hour)).Start(ctx); err != nil {
		t.Errorf("a clock with a new period once every clock stopped cleanly: %v", err)
	}
}
