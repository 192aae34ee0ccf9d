package scheduler_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
)

// eventKinds lists an instance's audit events, oldest first.
func eventKinds(t *testing.T, w *world, id string) string {
	t.Helper()
	events, err := w.st.Events(context.Background(), id, 200)
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, len(events))
	for i, e := range events {
		kinds[len(events)-1-i] = e.Type
	}
	return strings.Join(kinds, " ")
}

// run sweeps and works minute by minute for d, returning the scheduled
// rotations enqueued.
func run(t *testing.T, w *world, s sweeper, d time.Duration) int {
	t.Helper()
	enqueued := 0
	for end := w.now().Add(d); w.now().Before(end); w.advance(time.Minute) {
		res, err := s.Sweep(context.Background(), w.now())
		if err != nil {
			t.Fatal(err)
		}
		enqueued += res.Enqueued
		w.work(t, 2)
	}
	return enqueued
}

func TestQuarantineAfterRefusedCyclesAndManualRotationClearsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	s := w.scheduler(t, simParams())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.register(t, "refused")
	w.register(t, "healthy")
	w.iss.refuse("refused", true)

	// Within a period the first attempt comes; each failure is retried a
	// quarter period later (store.RetryAfterFailure), so three cycles fit
	// in two periods.
	run(t, w, s, 2*simPeriod)
	in, err := w.st.Instance(ctx, "refused")
	if err != nil {
		t.Fatal(err)
	}
	if !in.Quarantined() || in.FailStreak != 3 || !in.NextRotationAt.IsZero() {
		t.Fatalf("after 2 periods of refusals: quarantined %v, streak %d, next %s", in.Quarantined(), in.FailStreak, in.NextRotationAt)
	}
	kinds := eventKinds(t, w, "refused")
	if strings.Count(kinds, "scheduled") != 3 || strings.Count(kinds, "failed") != 3 || !strings.HasSuffix(kinds, "failed quarantined") {
		t.Fatalf("events = %s", kinds)
	}

	if later := run(t, w, s, 3*simPeriod); later != 3 { // the healthy one, once a period
		t.Fatalf("%d scheduled rotations in 3 periods after quarantine, want 3 (healthy only)", later)
	}
	if strings.Count(eventKinds(t, w, "refused"), "scheduled") != 3 {
		t.Fatal("a quarantined instance was attempted again")
	}
	t.Logf("refused instance: %d attempts before quarantine (limit 3), none in the 3 periods after", strings.Count(kinds, "scheduled"))

	w.iss.refuse("refused", false)
	if _, err := fleet.NewProducer(w.st, w.queue).Rotate(ctx, fleet.Request{InstanceIDs: []string{"refused"},
		Reason: "operator request"}); err != nil {
		t.Fatal(err)
	}
	w.work(t, 1)
	in, _ = w.st.Instance(ctx, "refused")
	if in.Quarantined() || in.FailStreak != 0 || in.NextRotationAt.Sub(w.now()) < simPeriod/2 {
		t.Fatalf("after a successful manual rotation: quarantined %v, streak %d, next %s (now %s)",
			in.Quarantined(), in.FailStreak, in.NextRotationAt, w.now())
	}
	if ids, n, _ := w.st.Quarantined(ctx, 10); n != 0 {
		t.Fatalf("still listed as quarantined: %v", ids)
	}
	if got := run(t, w, s, 2*simPeriod); got < 3 {
		t.Fatalf("%d scheduled rotations in 2 periods after the manual rotation, want the cleared instance back", got)
	}
	if !strings.HasSuffix(eventKinds(t, w, "refused"), "promoted revoke_scheduled") {
		t.Fatalf("events after recovery = %s", eventKinds(t, w, "refused"))
	}
}

func TestOperatorUnquarantineMakesInstanceDueAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	p := simParams()
	p.QuarantineAfter = 1
	s := w.scheduler(t, p)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.register(t, "q")
	w.iss.refuse("q", true)
	run(t, w, s, simPeriod)
	if in, _ := w.st.Instance(ctx, "q"); !in.Quarantined() {
		t.Fatal("not quarantined after one refusal with REKEY_QUARANTINE_AFTER=1")
	}
	w.iss.refuse("q", false)
	if ok, err := w.st.Unquarantine(ctx, "q", "operator"); !ok || err != nil {
		t.Fatalf("Unquarantine = %v, %v", ok, err)
	}
	in, _ := w.st.Instance(ctx, "q")
	if in.NextRotationAt.After(w.now()) {
		t.Fatalf("never rotated and unquarantined, next %s should be due already (now %s)", in.NextRotationAt, w.now())
	}
	if n := run(t, w, s, time.Minute); n != 1 {
		t.Fatalf("%d rotations at the sweep after unquarantine, want 1", n)
	}
	if in, _ := w.st.Instance(ctx, "q"); in.LastRotatedAt.IsZero() {
		t.Fatalf("not rotated: %+v", in)
	}
}
