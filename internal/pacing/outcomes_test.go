package pacing_test

import (
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/pacing"
)

// A wave fails when FailingAfter runs failed and none rotated within the
// window; one rotation, or failures older than the window, do not count
// as failing, and the counts expire.
func TestTheWaveFailsOnlyWhenNothingRotates(t *testing.T) {
	w := newWorld(t, 10, 2)
	ctx := t.Context()
	now := time.Now()
	at := func(t time.Time) func() time.Time { return func() time.Time { return t } }
	health := func() pacing.WaveHealth {
		t.Helper()
		h, err := pacing.ReadWaveHealth(ctx, w.r.Client, now)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	old := pacing.NewOutcomes(w.r.Client, at(now.Add(-pacing.FailingWindow-20*time.Second)))
	for range pacing.FailingAfter * 2 {
		old.Record(ctx, false)
	}
	recent := pacing.NewOutcomes(w.r.Client, at(now.Add(-pacing.FailingWindow+5*time.Second)))
	for range pacing.FailingAfter - 1 {
		recent.Record(ctx, false)
	}
	if h := health(); h.Failed != pacing.FailingAfter-1 || h.Failing() {
		t.Fatalf("after %d failures in the window and more before it: %+v failing %v, want %d failed, not failing",
			pacing.FailingAfter-1, h, h.Failing(), pacing.FailingAfter-1)
	}
	current := pacing.NewOutcomes(w.r.Client, at(now))
	current.Record(ctx, false)
	if h := health(); !h.Failing() {
		t.Fatalf("after %d failures and no rotation: %+v, want failing", pacing.FailingAfter, h)
	}
	recent.Record(ctx, true)
	if h := health(); h.Rotated != 1 || h.Failing() {
		t.Fatalf("after a rotation: %+v failing %v, want one rotated, not failing", h, h.Failing())
	}

	keys, err := w.r.Client.Keys(ctx, "rekey:pace:outcome:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ttl := w.r.Client.TTL(ctx, k).Val(); ttl <= 0 || ttl > 2*pacing.FailingWindow {
			t.Errorf("%s expires in %v, want within %v", k, ttl, 2*pacing.FailingWindow)
		}
	}
}

// While the wave's rotations all fail (the issuer or Heroku down), the
// feeder releases one rotation every ProbeEvery rather than at the budget's
// pace; once one rotates, the rest go at the budget's pace again.
func TestAFailingWaveIsReleasedAProbeAtATime(t *testing.T) {
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	w.hold(t, 30)
	ctx := t.Context()
	outcomes := pacing.NewOutcomes(w.r.Client, nil)
	for range pacing.FailingAfter {
		outcomes.Record(ctx, false)
	}
	f := w.feeder()
	t.Cleanup(run(t, f))

	time.Sleep(2 * time.Second) // 200 tokens of the budget
	if got := f.Stats().Released; got != 1 {
		t.Fatalf("released %d rotations in 2 s of a failing wave, want 1: a probe", got)
	}
	outcomes.Record(ctx, true)
	until(pacing.FailingCheck+2*time.Second, func() bool { return f.Stats().Released >= 16 })
	if got := f.Stats().Released; got < 16 {
		t.Fatalf("released %d rotations after one rotated, want the wave going again (16, the bulk queue's backlog cap)", got)
	}
}
