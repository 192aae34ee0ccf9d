package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/scheduler"
)

// The production clock runs with REKEY_QUARANTINE_AFTER=0 (never set an
// instance aside); `rekey scheduler` typed in a shell with the same period
// but the default limit of 3 published its limit over the running clock's,
// and it stayed after the shell's clock stopped: every instance whose
// scheduled rotations failed three times from then on was quarantined,
// which the running clock never noticed. A clock whose limit differs from
// the one a running clock published must refuse to start, as one whose
// period differs does.
func TestClockStartedWithAnotherQuarantineLimitChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	prodParams := periodParams(2160 * time.Hour)
	prodParams.QuarantineAfter = 0
	prod := w.scheduler(t, prodParams)
	if err := prod.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := prod.Sweep(ctx, w.now()); err != nil {
		t.Fatal(err)
	}
	w.advance(10 * time.Second)

	shellParams := periodParams(2160 * time.Hour)
	shellParams.QuarantineAfter = 3
	shell := w.scheduler(t, shellParams)
	err := shell.Start(ctx)
	var pe *scheduler.PeriodError
	if !errors.As(err, &pe) {
		t.Errorf("a clock with REKEY_QUARANTINE_AFTER=3 started while one with 0 runs: %v, want a refusal", err)
	}
	if p, err := w.st.SchedulePolicy(ctx); err != nil || p.QuarantineAfter != 0 {
		t.Fatalf("published quarantine limit %d (%v) after the second clock, want 0", p.QuarantineAfter, err)
	}
}
