package scheduler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// sweeper is what run needs of a Scheduler.
type sweeper interface {
	Sweep(ctx context.Context, now time.Time) (scheduler.Result, error)
}

var _ sweeper = (*scheduler.Scheduler)(nil)

func TestCap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		perHour  int
		interval time.Duration
		reserve  int
		want     int
	}{
		{4000, time.Minute, 2, 64},
		{15000, time.Minute, 2, 248},
		{4000, 5 * time.Minute, 2, 331},
		{100, time.Minute, 2, 1}, // below one call a sweep: still one
		{3600, time.Minute, 0, 60},
	}
	for _, c := range cases {
		if got := scheduler.Cap(c.perHour, c.interval, c.reserve); got != c.want {
			t.Errorf("Cap(%d, %s, %d) = %d, want %d", c.perHour, c.interval, c.reserve, got, c.want)
		}
	}
}

// overdue registers n instances and moves the clock two periods on, so
// every one is due.
func overdue(t *testing.T, w *world, n int) {
	t.Helper()
	for i := range n {
		w.register(t, fmt.Sprintf("od-%03d", i))
	}
	w.advance(2 * simPeriod)
}

func TestSweepStaysWithinCapOldestFirstAndCountsBacklog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	p := simParams()
	p.PerHour = 600 // 10 a minute, 8 after the reserve
	s := w.scheduler(t, p)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	overdue(t, w, 30)
	oldest, err := w.st.DueInstances(ctx, w.now(), 8)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Sweep(ctx, w.now())
	if err != nil || res.Enqueued != 8 || res.Cap != 8 {
		t.Fatalf("first sweep = %+v, %v; want 8 enqueued", res, err)
	}
	queued := map[string]bool{}
	for _, task := range w.queue.take() {
		p, _ := tasks.ParseRotate(task)
		queued[p.InstanceID] = true
		if p.Reason != store.ReasonScheduled || p.BatchID != "" {
			t.Fatalf("payload %+v", p)
		}
	}
	for _, d := range oldest {
		if !queued[d.InstanceID] {
			t.Fatalf("%s, among the 8 longest overdue, was not enqueued: %v", d.InstanceID, queued)
		}
	}
	// Nothing ran: the backlog uses the whole allowance.
	if res, _ := s.Sweep(ctx, w.now().Add(time.Minute)); res.Enqueued != 0 || res.Backlog != 8 {
		t.Fatalf("sweep with a full backlog = %+v", res)
	}
}

func TestSweepDefersToMaintenanceWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	noon := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	w := newWorld(t, noon)
	global := store.Window{Start: 2, End: 5}
	p := simParams()
	p.Window = &global
	s := w.scheduler(t, p)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.register(t, "global")
	w.register(t, "own")
	own := store.Window{Start: 13, End: 14}
	if err := w.st.SetSchedule(ctx, "own", store.Schedule{Window: &own}); err != nil {
		t.Fatal(err)
	}
	w.advance(simPeriod) // both due, at 13:00
	res, err := s.Sweep(ctx, w.now())
	if err != nil || res.Enqueued != 1 || res.Deferred != 1 {
		t.Fatalf("sweep at 13:00 = %+v, %v; want own enqueued, global deferred", res, err)
	}
	in, _ := w.st.Instance(ctx, "global")
	start := time.Date(2026, 1, 6, 2, 0, 0, 0, time.UTC)
	if in.NextRotationAt.Before(start) || !in.NextRotationAt.Before(start.Add(3*time.Hour)) {
		t.Fatalf("deferred to %s, want inside the next 02-05 window", in.NextRotationAt)
	}
	if res, _ := s.Sweep(ctx, in.NextRotationAt); res.Enqueued != 1 {
		t.Fatalf("sweep inside the window = %+v", res)
	}
}

func TestPauseIsHonouredByEveryScheduler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	a, b := w.scheduler(t, simParams()), w.scheduler(t, simParams())
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	overdue(t, w, 5)
	if err := w.st.PauseSchedule(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*scheduler.Scheduler{a, b} {
		if res, err := s.Sweep(ctx, w.now()); err != nil || res.Outcome != scheduler.Paused || res.Enqueued != 0 {
			t.Fatalf("paused sweep = %+v, %v", res, err)
		}
	}
	if err := w.st.ResumeSchedule(ctx); err != nil {
		t.Fatal(err)
	}
	if res, _ := b.Sweep(ctx, w.now()); res.Enqueued != 5 {
		t.Fatalf("sweep after resume = %+v", res)
	}
}

func TestOpenBreakerHoldsEveryScheduler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	a, b := w.scheduler(t, simParams()), w.scheduler(t, simParams())
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	overdue(t, w, 5)
	p := store.BreakerPolicy{Threshold: 2, Fraction: 1, Window: time.Minute}
	for _, id := range []string{"x-1", "x-2"} {
		if _, err := w.st.ObserveBreaker(ctx, id, store.DeniedForbidden, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*scheduler.Scheduler{a, b} {
		if res, err := s.Sweep(ctx, w.now()); err != nil || res.Outcome != scheduler.BreakerOpen || res.Enqueued != 0 {
			t.Fatalf("sweep with the breaker open = %+v, %v", res, err)
		}
	}
	if last, _ := w.st.LastSweep(ctx); last.Outcome != scheduler.BreakerOpen || w.queue.count() != 0 {
		t.Fatalf("last sweep %q with %d tasks enqueued; want held, none", last.Outcome, w.queue.count())
	}
	if _, err := w.st.ResumeBreaker(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if res, _ := b.Sweep(ctx, w.now()); res.Enqueued != 5 {
		t.Fatalf("sweep after resume = %+v", res)
	}
}

func TestManualRotationInFlightIsJoinedNotDoubled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	s := w.scheduler(t, simParams())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	overdue(t, w, 1)
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: "od-000", RotationID: "rot-manual",
		Reason: "operator request"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Sweep(ctx, w.now())
	if err != nil || res.Joined != 1 || res.Enqueued != 0 {
		t.Fatalf("sweep while a manual rotation is in flight = %+v, %v", res, err)
	}
	if res, _ := s.Sweep(ctx, w.now().Add(time.Minute)); res.Joined+res.Enqueued != 0 {
		t.Fatalf("the next sweep took the entry again: %+v", res)
	}
}

func TestOffIdlesAndSaysSo(t *testing.T) {
	t.Parallel()
	w := newWorld(t, simStart)
	s, err := scheduler.New(scheduler.Params{Store: w.st, Enqueuer: w.queue, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if p, _ := w.st.SchedulePolicy(context.Background()); p.Published {
			if p.Period != 0 {
				t.Fatalf("published period %s, want 0", p.Period)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run published no policy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while scheduled rotation is off; it should idle", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res, _ := s.Sweep(context.Background(), w.now()); res.Outcome != scheduler.Off {
		t.Fatalf("sweep with period 0 = %+v", res)
	}
}

func TestNewRefusesBadParams(t *testing.T) {
	t.Parallel()
	w := newWorld(t, simStart)
	for name, p := range map[string]scheduler.Params{
		"no store":     {Enqueuer: w.queue},
		"short period": {Store: w.st, Enqueuer: w.queue, Period: time.Second, PerHour: 10},
		"no rate":      {Store: w.st, Enqueuer: w.queue, Period: time.Hour},
	} {
		if _, err := scheduler.New(p); err == nil {
			t.Errorf("%s: New accepted %+v", name, p)
		}
	}
}

func TestReusedDueTimeGetsAFreshRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	s := w.scheduler(t, simParams())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.register(t, "again")
	in, _ := w.st.Instance(ctx, "again")
	first := in.NextRotationAt
	w.set(first)
	w.iss.refuse("again", true)
	if n := run(t, w, s, time.Minute); n != 1 {
		t.Fatalf("%d enqueued at the first slot", n)
	}
	w.iss.refuse("again", false)
	// Rebuilding the index puts the never-rotated instance back at its
	// first slot, whose rotation id was used by the failed attempt.
	if _, err := w.st.Reindex(ctx, true); err != nil {
		t.Fatal(err)
	}
	if in, _ := w.st.Instance(ctx, "again"); !in.NextRotationAt.Equal(first) {
		t.Fatalf("reindexed to %s, want the first slot %s", in.NextRotationAt, first)
	}
	if n := run(t, w, s, 2*time.Minute); n != 1 {
		t.Fatalf("%d enqueued in the two sweeps after the reindex, want 1 under a fresh id", n)
	}
	if in, _ := w.st.Instance(ctx, "again"); in.LastRotatedAt.IsZero() {
		t.Fatal("not rotated")
	}
}

// A sweep that claims a due time claimed before (an index rebuilt from old
// times) resumes the claim and holds the rotation again for the pacing
// feeder: one whose id was lost goes back in line, but one the feeder
// released already, whose task waits, is not held again, which would cost
// the feeder a token for a task that exists.
func TestResumedClaimHoldsOnlyAnUnreleasedRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	rdb := w.st.Redis()
	paced := pacing.NewClient(asynq.NewClientFromRedisClient(rdb), rdb, nil)
	p := simParams()
	p.Store, p.Enqueuer, p.Logger = w.st, paced, zerolog.Nop()
	s, err := scheduler.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	overdue(t, w, 2)
	if res, err := s.Sweep(ctx, w.now()); err != nil || res.Enqueued != 2 {
		t.Fatalf("first sweep = %+v, %v; want 2 held", res, err)
	}
	held, err := pacing.HeldIDs(ctx, rdb)
	if err != nil || len(held) != 2 {
		t.Fatalf("held %v, %v; want 2", held, err)
	}
	// The feeder releases the first: its task exists, its id leaves the
	// held set. The second's id is lost, its rotation still in flight.
	released, lost := held[0], held[1]
	rot, err := w.st.Rotation(ctx, released)
	if err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: rot.InstanceID, RotationID: released,
		Reason: store.ReasonScheduled}, asynq.Queue(tasks.QueueBulk))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := paced.EnqueueContext(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := pacing.Unhold(ctx, rdb, released, lost); err != nil {
		t.Fatal(err)
	}
	// Rebuilt, the index has both due again at the times the first sweep
	// claimed: the same rotations.
	if _, err := w.st.Reindex(ctx, true); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Sweep(ctx, w.now()); err != nil || res.Enqueued != 2 {
		t.Fatalf("sweep after the reindex = %+v, %v; want both claims resumed", res, err)
	}
	held, err = pacing.HeldIDs(ctx, rdb)
	if err != nil || len(held) != 1 || held[0] != lost {
		t.Fatalf("held %v, %v; want only %s (%s was released)", held, err, lost, released)
	}
}
