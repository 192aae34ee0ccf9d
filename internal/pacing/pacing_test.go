package pacing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/tasks"
)

// world is a Redis with a pacing client, an inspector, a budget, and the
// tasks of held rotations.
type world struct {
	r      *redistest.Redis
	client *pacing.Client
	insp   *asynq.Inspector
	lim    *ratelimit.Limiter
	src    *source
}

// source builds a rotate task for every held rotation but those marked
// finished or unusable.
type source struct{ finished, unusable sync.Map }

func (s *source) RotateTask(_ context.Context, id string) (*asynq.Task, error) {
	if _, ok := s.finished.Load(id); ok {
		return nil, nil
	}
	if _, ok := s.unusable.Load(id); ok {
		return nil, fmt.Errorf("rotation %s has no instance: %w", id, pacing.ErrUnusable)
	}
	return tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst", RotationID: id})
}

func newWorld(t *testing.T, perSecond, burst int) *world {
	t.Helper()
	r := redistest.New(t)
	q := asynq.NewClientFromRedisClient(r.Client)
	lim, err := ratelimit.New(r.Client, ratelimit.Params{PerHour: perSecond * 3600, Burst: burst, Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lim.Close() })
	return &world{r: r, client: pacing.NewClient(q, r.Client, nil), insp: asynq.NewInspectorFromRedisClient(r.Client), lim: lim,
		src: &source{}}
}

// hold holds n rotations and returns their ids in order.
func (w *world) hold(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		id := tasks.NewID("rot")
		if err := w.client.Hold(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		time.Sleep(2 * time.Millisecond) // distinct hold times: a defined order
	}
	return ids
}

// run runs f until the returned stop is called; stop returns once f.Run
// has.
func run(t *testing.T, f *pacing.Feeder) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { f.Run(ctx); close(stopped) }()
	return func() { cancel(); <-stopped }
}

// knowQueue makes the bulk queue known to asynq, as it is from the first
// bulk task on: asynq has no stats of a queue before.
func (w *world) knowQueue(t *testing.T) {
	t.Helper()
	task, err := w.src.RotateTask(t.Context(), "rot_first")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.client.Enqueue(task, asynq.Queue(pacing.Queue)); err != nil {
		t.Fatal(err)
	}
	if err := w.insp.DeleteTask(pacing.Queue, tasks.RotateTaskID("rot_first")); err != nil {
		t.Fatal(err)
	}
}

// enqueue enqueues the task of held rotation id as a release before (or
// an earlier version's hold, with asynq.ProcessIn) did.
func (w *world) enqueue(t *testing.T, id string, opts ...asynq.Option) {
	t.Helper()
	task, err := w.src.RotateTask(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.client.Enqueue(task, append([]asynq.Option{asynq.Queue(pacing.Queue)}, opts...)...); err != nil {
		t.Fatal(err)
	}
}

// until waits up to within for done.
// releasedAndUnheld reports whether f released n rotations and nothing is
// held any more. A release is counted when its task is enqueued, before its
// id leaves the held set: a feeder stopped between the two leaves it held,
// as a crash would, for the next feeder to drop.
func releasedAndUnheld(t *testing.T, w *world, f *pacing.Feeder, n int64) bool {
	held, _ := pacing.Held(t.Context(), w.r.Client)
	return f.Stats().Released >= n && held == 0
}

func until(within time.Duration, done func() bool) {
	for deadline := time.Now().Add(within); !done() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// pausedFeeder pauses the bulk queue and runs a feeder that looks at it
// only through its pause checks (its regular looks an hour apart) until
// the test ends.
func (w *world) pausedFeeder(t *testing.T) *pacing.Feeder {
	t.Helper()
	if err := w.insp.PauseQueue(pacing.Queue); err != nil {
		t.Fatal(err)
	}
	p := w.params()
	p.Idle, p.QueueCheck, p.PauseCheck = 20*time.Millisecond, time.Hour, time.Hour
	f := pacing.NewFeeder(p)
	t.Cleanup(run(t, f))
	return f
}

// params are a feeder's parameters on w, with its budget.
func (w *world) params() pacing.FeederParams {
	return pacing.FeederParams{Redis: w.r.Client, Tasks: w.src, Client: w.client, Queues: w.insp, Budget: w.lim}
}

func (w *world) feeder() *pacing.Feeder {
	p := w.params()
	p.Idle, p.QueueCheck, p.PauseCheck = 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	return pacing.NewFeeder(p)
}

// pendingOrder returns the rotation ids of the bulk queue's pending tasks in
// the order workers will take them.
func (w *world) pendingOrder(t *testing.T) []string {
	t.Helper()
	infos, err := w.insp.ListPendingTasks(pacing.Queue)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, info := range infos {
		p, err := tasks.ParseRotate(asynq.NewTask(info.Type, info.Payload))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.RotationID)
	}
	return ids
}

func TestHeldRotationsHaveNoTaskUntilReleased(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 10, 2)
	ids := w.hold(t, 3)
	if err := w.client.Hold(t.Context(), ids[0]); err != nil {
		t.Errorf("holding a held rotation again: %v, want success", err)
	}
	if n, _ := pacing.Held(t.Context(), w.r.Client); n != 3 {
		t.Errorf("%d rotations held, want 3", n)
	}
	for _, id := range ids {
		if info, err := w.insp.GetTaskInfo(pacing.Queue, tasks.RotateTaskID(id)); !errors.Is(err, asynq.ErrTaskNotFound) &&
			!errors.Is(err, asynq.ErrQueueNotFound) {
			t.Errorf("held rotation %s: task %+v, %v; want none until its release", id, info, err)
		}
	}
}

// Two feeders on one budget: one feeds, in the order the rotations were
// held, at the budget's pace, and every release carries a paid token that
// is spent once.
func TestFeedersReleaseInOrderAtTheBudgetsPace(t *testing.T) {
	t.Parallel()
	const rate, burst, n = 10, 2, 12
	w := newWorld(t, rate, burst)
	ids := w.hold(t, n)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, b := w.feeder(), w.feeder()
	done := make(chan struct{}, 2)
	start := time.Now()
	for _, f := range []*pacing.Feeder{a, b} {
		go func() { f.Run(ctx); done <- struct{}{} }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Released+b.Stats().Released < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	<-done
	<-done
	sa, sb := a.Stats(), b.Stats()
	if sa.Released+sb.Released != n {
		t.Fatalf("released %d + %d, want %d", sa.Released, sb.Released, n)
	}
	if sa.Released != 0 && sb.Released != 0 {
		t.Errorf("both feeders released (%d and %d): the lease should let one feed", sa.Released, sb.Released)
	}
	// The background burst (burst - reserve) goes at once, the rest one
	// token per interval.
	least := time.Duration(n-(burst-1)) * time.Second / rate
	if took < least*9/10 {
		t.Errorf("released %d in %s, faster than the budget allows (%s)", n, took, least)
	}
	if took > least+3*time.Second {
		t.Errorf("released %d in %s, want about %s", n, took, least)
	}
	// asynq lists pending tasks in the order workers take them.
	if got := w.pendingOrder(t); !slices.Equal(got, ids) {
		t.Fatalf("pending order %v, want the hold order %v", got, ids)
	}
	paid := pacing.NewPaid(w.r.Client)
	for _, id := range ids {
		if !paid.Take(t.Context(), id) {
			t.Errorf("rotation %s released without a paid token", id)
		}
		if paid.Take(t.Context(), id) {
			t.Errorf("rotation %s's paid token spent twice", id)
		}
	}
}

// With room for pairs in the background burst, the feeder releases two
// rotations per request for tokens, still in the hold order and at the
// budget's pace, each with its own paid token.
// The feeder releases pairs on one request to the budget each, and the
// last rotations of a wave, fewer than ten held, one at a time.
func TestFeederReleasesInPairsAndTheLastOnesOneAtATime(t *testing.T) {
	t.Parallel()
	const rate, burst, n = 10, 3, 19
	w := newWorld(t, rate, burst)
	ids := w.hold(t, n)
	f := w.feeder()
	start := time.Now()
	stop := run(t, f)
	deadline := time.Now().Add(5 * time.Second)
	for f.Stats().Released < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	stop()
	if s := f.Stats(); s.Released != n || s.Unused != 0 {
		t.Fatalf("feeder stats %+v, want %d released and no token unused", s, n)
	}
	// 19, 17, 15, 13 and 11 held: five pairs; then 9 held, one by one.
	if got := w.lim.Stats().Background.Granted; got != 5+9 {
		t.Errorf("the budget granted %d requests, want 14: 5 pairs, then the last 9 one at a time", got)
	}
	// From a background burst of 2: the first pair at once, then one
	// token an interval.
	if least := time.Duration(n-1-2) * time.Second / rate; took < least*9/10 {
		t.Errorf("released %d in %s, faster than the budget allows (%s)", n, took, least)
	}
	if got := w.pendingOrder(t); !slices.Equal(got, ids) {
		t.Fatalf("pending order %v, want the hold order %v", got, ids)
	}
	paid := pacing.NewPaid(w.r.Client)
	for _, id := range ids {
		if !paid.Take(t.Context(), id) {
			t.Errorf("rotation %s released without a paid token", id)
		}
	}
}

// A paused bulk queue (an open circuit breaker) releases nothing and spends
// no token; a rotation that finished while held (a cancelled batch's) is
// dropped, with no token either.
func TestFeederWaitsWhileTheQueueIsPaused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	ids := w.hold(t, 3)
	w.knowQueue(t)
	if err := w.insp.PauseQueue(pacing.Queue); err != nil {
		t.Fatal(err)
	}
	w.src.finished.Store(ids[0], true)
	f := w.feeder()
	stop := run(t, f)
	time.Sleep(500 * time.Millisecond)
	if s := f.Stats(); s.Released+s.Dropped != 0 || w.lim.Stats().Background.Granted != 0 {
		t.Errorf("paused queue: %+v, %d tokens taken; want nothing released and no token", s, w.lim.Stats().Background.Granted)
	}
	if err := w.insp.UnpauseQueue(pacing.Queue); err != nil {
		t.Fatal(err)
	}
	until(5*time.Second, func() bool { return releasedAndUnheld(t, w, f, 2) })
	stop()
	if s := f.Stats(); s.Released != 2 || s.Dropped != 1 {
		t.Errorf("after unpausing: %+v, want 2 released and the finished rotation's id dropped", s)
	}
	if n := w.lim.Stats().Background.Granted; n != 2 {
		t.Errorf("%d tokens taken for 2 releases", n)
	}
	if n, _ := pacing.Held(t.Context(), w.r.Client); n != 0 {
		t.Errorf("%d rotations still held", n)
	}
}

// A pause set before asynq knows the bulk queue (no bulk task ever
// enqueued), which asynq's stats cannot show, costs one release: the next
// look, at the queue the release made known, sees it.
func TestFeederSeesAPauseOfAnUnknownQueueAfterOneRelease(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	w.hold(t, 12) // enough for pairs
	f := w.pausedFeeder(t)
	time.Sleep(300 * time.Millisecond)
	if s := f.Stats(); s.Released != 2 {
		t.Errorf("released %d into the paused queue asynq did not know, want one pair", s.Released)
	}
}

// Between its looks at the queue's pause, the feeder sees a backed-up queue
// by the cheap look alone, and stops releasing.
func TestFeederStopsWhenTheQueueBacksUp(t *testing.T) {
	t.Parallel()
	const maxPending = 4
	w := newWorld(t, 50, 4)
	w.hold(t, 12)
	p := w.params()
	p.MaxPending, p.Idle, p.QueueCheck, p.PauseCheck = maxPending, 20*time.Millisecond, time.Millisecond, time.Hour
	f := pacing.NewFeeder(p)
	stop := run(t, f)
	time.Sleep(600 * time.Millisecond) // time for 30 tokens at 50/s
	stop()
	// A pair may go out when one slot is left.
	if r := f.Stats().Released; r < maxPending || r > maxPending+1 {
		t.Errorf("released %d into a queue nobody takes from, want %d (or one more)", r, maxPending)
	}
}

// A held rotation whose record cannot make a task is dropped, with no
// token, and the rotations behind it go on: held, it would stop every wave.
func TestFeederDropsAnUnusableRotationAndGoesOn(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	ids := w.hold(t, 3)
	w.src.unusable.Store(ids[0], true)
	f := w.feeder()
	defer run(t, f)()
	until(3*time.Second, func() bool { return f.Stats().Released >= 2 })
	if s := f.Stats(); s.Released != 2 || s.Dropped != 1 {
		t.Errorf("feeder stats %+v, want the unusable one dropped and 2 released", s)
	}
	if n := w.lim.Stats().Background.Granted; n != 2 {
		t.Errorf("%d tokens taken for 2 releases", n)
	}
}

// A release whose task exists already (an earlier release's, still
// waiting) leaves that release's paid mark alone: the waiting task spends
// it.
func TestFeederKeepsTheMarkOfAnEarlierRelease(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	ids := w.hold(t, 1)
	w.enqueue(t, ids[0])
	if err := w.r.Client.Set(t.Context(), "rekey:pace:paid:"+ids[0], "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	f := w.feeder()
	stop := run(t, f)
	until(3*time.Second, func() bool { return f.Stats().Dropped >= 1 })
	stop()
	if s := f.Stats(); s.Dropped != 1 || s.Released != 0 {
		t.Fatalf("feeder stats %+v, want the released one dropped", s)
	}
	if !pacing.NewPaid(w.r.Client).Take(t.Context(), ids[0]) {
		t.Errorf("the earlier release's paid mark was deleted: the waiting task waits for a token again")
	}
}

// A feeder that dies after enqueueing a task and before taking its id out
// of the held set leaves the id held: the next feeder's enqueue of it is
// refused by asynq and the id dropped, and the rotations behind it go on.
func TestFeederDropsAnIdReleasedBeforeACrash(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	ids := w.hold(t, 3)
	w.enqueue(t, ids[0])
	f := w.feeder()
	stop := run(t, f)
	until(5*time.Second, func() bool { return releasedAndUnheld(t, w, f, 2) })
	stop()
	if s := f.Stats(); s.Released != 2 || s.Dropped != 1 {
		t.Errorf("feeder stats %+v, want 2 released and the id released before dropped", s)
	}
	if n, _ := pacing.Held(t.Context(), w.r.Client); n != 0 {
		t.Errorf("%d rotations still held", n)
	}
	if got := w.pendingOrder(t); !slices.Equal(got, ids) {
		t.Errorf("pending %v, want %v", got, ids)
	}
}

// A feeder looks at the queue again after half of MaxPending releases,
// however long QueueCheck is, and, once the queue backed up, every Idle: it
// resumes as soon as the workers have caught up rather than a QueueCheck
// later, which at a fast budget left the budget unused for seconds.
func TestFeederResumesOnceTheQueueDrains(t *testing.T) {
	t.Parallel()
	const maxPending = 4
	w := newWorld(t, 50, 4)
	w.hold(t, 12)
	p := w.params()
	p.MaxPending, p.Idle, p.QueueCheck, p.PauseCheck = maxPending, 20*time.Millisecond, time.Hour, time.Hour
	f := pacing.NewFeeder(p)
	defer run(t, f)()
	time.Sleep(600 * time.Millisecond) // time for 30 tokens at 50/s
	first := f.Stats().Released
	if first < maxPending || first > maxPending+2 {
		t.Fatalf("released %d into a queue nobody takes from with an hour between regular looks, want about %d", first, maxPending)
	}
	// The workers catch up: the queue empties.
	if _, err := w.insp.DeleteAllPendingTasks(pacing.Queue); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for f.Stats().Released == first && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := f.Stats().Released; r == first {
		t.Errorf("no release within 2 s of the queue emptying (QueueCheck an hour, Idle 20ms)")
	}
}

// A feeder that saw the queue paused looks again every PausedCheck, however
// long PauseCheck is: the wave resumes within seconds of the unpause.
func TestFeederResumesSoonAfterAnUnpause(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 4)
	w.hold(t, 4)
	w.knowQueue(t)
	f := w.pausedFeeder(t)
	time.Sleep(300 * time.Millisecond)
	if r := f.Stats().Released; r != 0 {
		t.Fatalf("released %d into the paused queue", r)
	}
	if err := w.insp.UnpauseQueue(pacing.Queue); err != nil {
		t.Fatal(err)
	}
	unpaused := time.Now()
	limit := pacing.PausedCheck + time.Second
	for f.Stats().Released == 0 && time.Since(unpaused) < limit {
		time.Sleep(10 * time.Millisecond)
	}
	if f.Stats().Released == 0 {
		t.Errorf("no release within %s of the unpause (PauseCheck an hour)", limit)
	}
}

// sharedPause sets the account's shared pause, as a 429 answered in another
// process does, for d.
func (w *world) sharedPause(t *testing.T, d time.Duration) {
	t.Helper()
	if err := w.r.Client.Set(t.Context(), "rekey:ratelimit:{account}:hold", "429", d).Err(); err != nil {
		t.Fatal(err)
	}
}

// A wait longer than the lease (here a 429's shared pause of 7 s, against a
// 5 s lease) keeps the lease: the standby feeder never takes it, so it
// never reads the same ids nor spends tokens on them.
func TestFeederKeepsItsLeaseThroughALongWait(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 10, 3)
	limB, err := ratelimit.New(w.r.Client, ratelimit.Params{PerHour: 10 * 3600, Burst: 3, Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = limB.Close() })
	ids := w.hold(t, 4)
	w.sharedPause(t, 7*time.Second)
	feeder := func(lim *ratelimit.Limiter) *pacing.Feeder {
		p := w.params()
		p.Budget, p.Idle, p.QueueCheck, p.PauseCheck = lim, 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
		return pacing.NewFeeder(p)
	}
	a, b := feeder(w.lim), feeder(limB)
	stopA := run(t, a)
	time.Sleep(200 * time.Millisecond) // a leads
	stopB := run(t, b)
	until(15*time.Second, func() bool { n, _ := pacing.Held(t.Context(), w.r.Client); return n == 0 })
	time.Sleep(300 * time.Millisecond)
	stopB()
	stopA()
	sa, sb := a.Stats(), b.Stats()
	if sa.Released != int64(len(ids)) || sb.Released+sb.Dropped > 0 {
		t.Errorf("released by the leader %+v, by the standby %+v; want the %d held by the leader alone", sa, sb, len(ids))
	}
	if sa.Unused+sb.Unused > 0 {
		t.Errorf("tokens taken for nothing: %d by the leader, %d by the standby", sa.Unused, sb.Unused)
	}
	if got := limB.Stats().Background.Granted; got > 0 {
		t.Errorf("the standby was granted %d waits of the budget; want none", got)
	}
	paid := pacing.NewPaid(w.r.Client)
	for _, id := range ids {
		if !paid.Take(t.Context(), id) {
			t.Errorf("rotation %s released without its paid mark", id)
		}
	}
}

// A feeder whose lease is taken while it waits (its renewals failed, and
// another feeder took it) gives the wait up and releases nothing: the
// other one releases those ids.
func TestFeederThatLostItsLeaseInAWaitReleasesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 10, 3)
	w.hold(t, 4)
	w.sharedPause(t, 4*time.Second)
	f := w.feeder()
	stop := run(t, f)
	time.Sleep(500 * time.Millisecond) // it leads, and waits for the pause to end
	if err := w.r.Client.Set(t.Context(), "rekey:pace:feeder", "feeder_other", 20*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // the pause is over
	stop()
	if n, err := pacing.Held(t.Context(), w.r.Client); err != nil || n != 4 {
		t.Errorf("held = %d, %v; want the 4 still held", n, err)
	}
	if st := f.Stats(); st.Released+st.Dropped+st.Unused > 0 {
		t.Errorf("the feeder that lost its lease released or spent: %+v", st)
	}
	if got := w.lim.Stats().Background.Granted; got > 0 {
		t.Errorf("the budget granted %d waits; want none", got)
	}
}

// failZAdd fails every ZADD, as a Redis blip or a caller giving up would
// between Hold's enqueue and its ZADD.
type failZAdd struct{}

func (failZAdd) DialHook(next redis.DialHook) redis.DialHook { return next }
func (failZAdd) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "zadd") {
			return errors.New("connection reset")
		}
		return next(ctx, cmd)
	}
}
func (failZAdd) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A Hold that could not add its id leaves a claimed rotation the feeder
// never sees; HoldAgain puts the id back, once.
func TestHoldAgainHoldsARotationWhoseIdWasNotAdded(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	first := w.hold(t, 1)
	bad := redis.NewClient(&redis.Options{Addr: w.r.Addr, DB: w.r.DB})
	t.Cleanup(func() { _ = bad.Close() })
	bad.AddHook(failZAdd{})
	id := tasks.NewID("rot")
	if err := pacing.NewClient(asynq.NewClientFromRedisClient(bad), bad, nil).Hold(t.Context(), id); err == nil {
		t.Fatal("Hold succeeded with every ZADD failing")
	}
	if n, _ := pacing.Held(t.Context(), w.r.Client); n != 1 {
		t.Fatalf("%d held, want only the first", n)
	}
	for i, want := range []bool{true, false} {
		added, err := w.client.HoldAgain(t.Context(), id, time.Now())
		if err != nil || added != want {
			t.Errorf("HoldAgain #%d: %v, %v; want %v", i+1, added, err, want)
		}
	}
	f := w.feeder()
	defer run(t, f)()
	deadline := time.Now().Add(3 * time.Second)
	for f.Stats().Released < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := w.pendingOrder(t), []string{first[0], id}; !slices.Equal(got, want) {
		t.Errorf("released %v, want %v: the first held and the one held again", got, want)
	}
}

// A task an earlier version held is scheduled a week ahead: the feeder's
// enqueue of its rotation finds it there and runs it instead, on a paid
// token, in its place in line.
func TestFeederReleasesATaskAnEarlierVersionHeld(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	id := tasks.NewID("rot")
	w.enqueue(t, id, asynq.ProcessIn(pacing.HoldFor))
	if _, err := w.client.HoldAgain(t.Context(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // distinct hold times: a defined order
	later := w.hold(t, 1)
	f := w.feeder()
	defer run(t, f)()
	deadline := time.Now().Add(3 * time.Second)
	for f.Stats().Released < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := f.Stats(); s.Released != 2 || s.Dropped != 0 {
		t.Errorf("feeder stats %+v, want both released", s)
	}
	if got, want := w.pendingOrder(t), []string{id, later[0]}; !slices.Equal(got, want) {
		t.Errorf("pending %v, want %v", got, want)
	}
	if !pacing.NewPaid(w.r.Client).Take(t.Context(), id) {
		t.Errorf("the earlier version's task released without a paid token")
	}
}

// statsFail is an inspector whose queue stats always fail, as asynq's
// would on a Redis that refuses MEMORY USAGE.
type statsFail struct{ *asynq.Inspector }

func (statsFail) GetQueueInfo(string) (*asynq.QueueInfo, error) {
	return nil, errors.New("ERR unknown command 'MEMORY'")
}

// A feeder whose look at the queue's stats fails goes by its cheap look at
// the backlog: the wave goes on.
func TestFeederReleasesWhenQueueStatsFail(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 4)
	w.hold(t, 4)
	w.knowQueue(t)
	p := w.params()
	p.Queues, p.Idle, p.QueueCheck, p.PauseCheck = statsFail{w.insp}, 20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond
	f := pacing.NewFeeder(p)
	defer run(t, f)()
	deadline := time.Now().Add(3 * time.Second)
	for f.Stats().Released < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := f.Stats().Released; r != 4 {
		t.Errorf("released %d of 4 with the queue stats failing, want all", r)
	}
}

// HoldAgain holds a rotation that has no task (also before the bulk queue
// exists), or only one an earlier version held (scheduled), and leaves out
// one whose task the feeder released, waiting or archived since: holding
// that one would spend a token on a task that exists.
func TestHoldAgainLeavesOutARotationWhoseTaskWasReleased(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	first, taskless, legacy, released, archived := tasks.NewID("rot"), tasks.NewID("rot"), tasks.NewID("rot"),
		tasks.NewID("rot"), tasks.NewID("rot")
	hold := func(id string, want bool) {
		t.Helper()
		if held, err := w.client.HoldAgain(t.Context(), id, time.Now()); err != nil || held != want {
			t.Errorf("HoldAgain(%s) = %v, %v; want %v", id, held, err, want)
		}
	}
	hold(first, true) // no bulk queue yet: asynq knows no such queue
	w.enqueue(t, legacy, asynq.ProcessIn(pacing.HoldFor))
	w.enqueue(t, released)
	w.enqueue(t, archived)
	if err := w.insp.ArchiveTask(pacing.Queue, tasks.RotateTaskID(archived)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		want bool
	}{{taskless, true}, {legacy, true}, {released, false}, {archived, false}, {taskless, false}} {
		hold(c.id, c.want)
	}
	ids, err := pacing.HeldIDs(t.Context(), w.r.Client)
	slices.Sort(ids)
	want := []string{first, taskless, legacy}
	slices.Sort(want)
	if err != nil || !slices.Equal(ids, want) {
		t.Errorf("held %v, %v; want %v", ids, err, want)
	}
}

// A client's HoldMany calls are released in the order they were made, even
// many within one millisecond: the held set's scores of a later call are
// greater, never tied (a tie would order the members by their ids).
func TestHoldManyKeepsTheOrderOfItsCalls(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 10, 5)
	ctx := context.Background()
	var want []string
	for i := range 50 {
		// Ids that sort backwards, so a tie would show.
		id := fmt.Sprintf("rot-%03d", 999-i)
		if err := w.client.HoldMany(ctx, []string{id}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	got, err := w.r.Client.ZRange(ctx, "rekey:pace:held", 0, -1).Result()
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("held in the order %v (%v), want the calls' %v", got, err, want)
	}
}

// runsMeanwhile is an inspector under which a held rotation's task, seen
// waiting (scheduled, or in asynq's retry set), comes due and is taken up just before the
// feeder runs it: asynq refuses to run it again (a FailedPrecondition of
// its own, not ErrTaskNotFound).
type runsMeanwhile struct{ *asynq.Inspector }

func (r runsMeanwhile) RunTask(queue, id string) error {
	if err := r.Inspector.RunTask(queue, id); err != nil {
		return err
	}
	return r.Inspector.RunTask(queue, id)
}

// A held rotation whose waiting task runs meanwhile, between the feeder's
// look and its RunTask, is released already: it leaves the held set at
// once, with no warning and no second token spent on it.
func TestFeederDropsARotationWhoseTaskRunsMeanwhile(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 50, 3)
	w.knowQueue(t)
	id := tasks.NewID("rot")
	w.enqueue(t, id, asynq.ProcessIn(pacing.HoldFor))
	if _, err := w.client.HoldAgain(t.Context(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	p := w.params()
	p.Idle, p.QueueCheck, p.PauseCheck = 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	p.Queues, p.Logger = runsMeanwhile{w.insp}, zerolog.New(&syncWriter{w: &log})
	f := pacing.NewFeeder(p)
	stop := run(t, f)
	until(3*time.Second, func() bool { return f.Stats().Dropped > 0 })
	time.Sleep(200 * time.Millisecond)
	stop()
	if s := f.Stats(); s.Dropped != 1 || s.Released != 0 {
		t.Errorf("feeder stats %+v, want the rotation dropped", s)
	}
	if strings.Contains(log.String(), "pacing_release_failed") {
		t.Errorf("the feeder warned of a rotation whose task runs:\n%s", log.String())
	}
}

// syncWriter serialises a logger's writes for the test to read.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
