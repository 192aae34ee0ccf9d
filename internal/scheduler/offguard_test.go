package scheduler_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/store"
)

// An operator turns scheduled rotation off (REKEY_ROTATION_PERIOD=0 on
// the clock, which restarts and idles), then someone types `rekey
// scheduler` in a shell whose environment has the default period. The
// idle clock still runs, so the guard that refuses a clock with another
// period must hold: before, the idle clock never said it ran, the shell's
// clock published 90 days over "off", recomputed every instance's due
// time and started rotating the fleet the operator had stopped.
func TestClockStartedWhileAnIdleOffClockRunsChangesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t, simStart)
	off := w.scheduler(t, scheduler.Params{Interval: simInterval})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- off.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The idle clock runs once it has published "off" and said that it
	// runs (rekey:clocks, a member of its own), which it does right after.
	idling := func() bool {
		members, _ := w.st.Redis().ZRange(context.Background(), "rekey:clocks", 0, -1).Result()
		return slices.ContainsFunc(members, func(m string) bool { return strings.HasPrefix(m, store.IdleClockPrefix) })
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if p, _ := w.st.SchedulePolicy(context.Background()); p.Published && p.Period == 0 && idling() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle clock published no policy, or did not say that it runs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.register(t, "inst")
	w.advance(30 * time.Second)

	shell := w.scheduler(t, periodParams(2160*time.Hour))
	err := shell.Start(context.Background())
	var pe *scheduler.PeriodError
	if !errors.As(err, &pe) || pe.Published != 0 {
		t.Errorf("a clock with 2160h started while an idle clock runs with 0: %v, want a *PeriodError naming 0", err)
	}
	if p, _ := w.st.SchedulePolicy(context.Background()); p.Period != 0 {
		t.Fatalf("published period %s after the second clock, want 0 (off)", p.Period)
	}
	if n, _ := w.st.LiveClocks(context.Background(), w.now(), time.Minute); n != 0 {
		t.Errorf("%d clocks counted as sweeping, want 0: an idle clock is not counted", n)
	}
	if n, _ := w.st.CountScheduled(context.Background()); n != 0 {
		t.Fatalf("%d instances in the due index with scheduled rotation off", n)
	}
}
