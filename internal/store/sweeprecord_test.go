package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// A last sweep recorded by an earlier version, which kept no good sweep
// apart, reads as the last good sweep when it did not fail, so that
// /metrics does not read an upgraded fleet as never swept.
func TestSweepRecordedBeforeGoodSweepsWereKeptReadsAsGood(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	at := time.UnixMilli(1_767_225_600_000).UTC()
	if err := f.r.Client.HSet(ctx, "rekey:schedule", "sweep_at", at.UnixMilli(), "sweep_next",
		at.Add(time.Minute).UnixMilli(), "sweep_outcome", "swept").Err(); err != nil {
		t.Fatal(err)
	}
	last, err := f.st.LastSweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.Failed() || !last.GoodAt.Equal(at) || !last.FailingSince.IsZero() {
		t.Errorf("earlier version's record read as %+v, want a good sweep at %s", last, at)
	}
}

// LiveClocks counts the clocks that said they run and are not more than
// the slack past when they planned to say so again; a clock that stopped
// cleanly is not counted.
func TestLiveClocksLeavesOutStoppedAndSilentClocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	now := time.Now()
	for token, next := range map[string]time.Time{"running": now.Add(time.Minute), "late": now.Add(-time.Minute),
		"silent": now.Add(-3 * time.Minute), "stopping": now.Add(time.Minute)} {
		if err := f.st.ClockAlive(ctx, token, next); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.ClockStopped(ctx, "stopping", now, time.Minute); err != nil {
		t.Fatal(err)
	}
	n, err := f.st.LiveClocks(ctx, now, store.ClockGrace)
	if err != nil || n != 2 {
		t.Errorf("LiveClocks = %d, %v; want 2 (running and late)", n, err)
	}
}
