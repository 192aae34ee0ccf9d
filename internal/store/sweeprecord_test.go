package store_test

import (
	"context"
	"slices"
	"strconv"
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

// A clock that dies without stopping cleanly (killed, crashed, Redis out
// of reach as it stopped) leaves its token in the clocks set; a clock that
// runs forgets those silent for a day as it says it runs, so that months
// of scheduler processes that never stopped cleanly, one random token
// each, do not pile up in Redis.
func TestClocksThatDiedAreForgottenByAClockThatRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const days = 60
	for d := range days {
		now := start.Add(time.Duration(d) * 24 * time.Hour)
		f.now = now
		if err := f.st.ClockAlive(ctx, "died-"+strconv.Itoa(d), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := f.st.ClockAlive(ctx, "running", now.Add(time.Hour).Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	clocks, err := f.r.Client.ZRange(ctx, "rekey:clocks", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The clock that died a day less a minute ago is not silent for a day yet.
	want := []string{"died-" + strconv.Itoa(days-2), "died-" + strconv.Itoa(days-1), "running"}
	if !slices.Equal(clocks, want) {
		t.Errorf("after %d days of clocks that died, rekey:clocks holds %d: %v; want %v", days, len(clocks), clocks[:min(len(clocks), 5)], want)
	}
	// A clock that will say it runs two days from now forgets none of
	// those that run.
	if err := f.st.ClockAlive(ctx, "slow", f.now.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	clocks, err = f.r.Client.ZRange(ctx, "rekey:clocks", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := append(want, "slow"); !slices.Equal(clocks, want) {
		t.Errorf("after a clock with a 48h interval said it runs, rekey:clocks holds %v; want %v", clocks, want)
	}
}
