package pacing_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/tasks"
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

	// Retries, which make no streak: first runs failing before the window,
	// and on into it with none rotating, are a streak that keeps the wave
	// slowed (TestASlowedWaveStaysSlowedWhileOnlyItsProbesFail).
	old := pacing.NewOutcomes(w.r.Client, at(now.Add(-pacing.FailingWindow-20*time.Second)))
	for range pacing.FailingAfter * 2 {
		old.Record(ctx, false, true)
	}
	recent := pacing.NewOutcomes(w.r.Client, at(now.Add(-pacing.FailingWindow+5*time.Second)))
	for range pacing.FailingAfter - 1 {
		recent.Record(ctx, false, false)
	}
	if h := health(); h.Failed != pacing.FailingAfter-1 || h.Failing() {
		t.Fatalf("after %d failures in the window and more before it: %+v failing %v, want %d failed, not failing",
			pacing.FailingAfter-1, h, h.Failing(), pacing.FailingAfter-1)
	}
	current := pacing.NewOutcomes(w.r.Client, at(now))
	current.Record(ctx, false, false)
	if h := health(); !h.Failing() {
		t.Fatalf("after %d failures and no rotation: %+v, want failing", pacing.FailingAfter, h)
	}
	recent.Record(ctx, true, false)
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

// failedRuns records n failed first runs of the wave, now, and returns the
// Outcomes that recorded them.
func (w *world) failedRuns(t *testing.T, n int) *pacing.Outcomes {
	t.Helper()
	outcomes := pacing.NewOutcomes(w.r.Client, nil)
	for range n {
		outcomes.Record(t.Context(), false, false)
	}
	return outcomes
}

// While the wave's rotations all fail (the issuer or Heroku down), the
// feeder releases one rotation every ProbeEvery rather than at the budget's
// pace; once one rotates, the rest go at the budget's pace again.
func TestAFailingWaveIsReleasedAProbeAtATime(t *testing.T) {
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	w.hold(t, 30)
	ctx := t.Context()
	outcomes := w.failedRuns(t, pacing.FailingAfter)
	f := w.feeder()
	t.Cleanup(run(t, f))

	time.Sleep(2 * time.Second) // 200 tokens of the budget
	if got := f.Stats().Released; got != 1 {
		t.Fatalf("released %d rotations in 2 s of a failing wave, want 1: a probe", got)
	}
	outcomes.Record(ctx, true, false)
	until(pacing.FailingCheck+2*time.Second, func() bool { return f.Stats().Released >= 16 })
	if got := f.Stats().Released; got < 16 {
		t.Fatalf("released %d rotations after one rotated, want the wave going again (16, the bulk queue's backlog cap)", got)
	}
}

// failingWorkers stands for workers whose every run of a released rotation
// fails at once for a retry (an issuer answering 503 to every mint): each
// release is a failed run counted in the wave's outcomes, and nothing waits
// in the bulk queue.
type failingWorkers struct{ outcomes *pacing.Outcomes }

func (w failingWorkers) EnqueueContext(ctx context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	w.outcomes.Record(ctx, false, false)
	return &asynq.TaskInfo{Queue: pacing.Queue}, nil
}

// A wave released without tokens (REKEY_RATE_SCOPE=instance) goes as fast
// as the workers take it: when the issuer goes down just after a rotation
// went through, its rotations fail as fast as they are released. The
// feeder must slow it once a run of failures with none rotated says so,
// not a minute after the last rotation, by when thousands of the wave's
// rotations would wait out asynq's back-off of hours.
func TestAWaveWithoutTokensSlowsSoonAfterItsRotationsStartFailing(t *testing.T) {
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	w.hold(t, 1000)
	ctx := t.Context()
	outcomes := pacing.NewOutcomes(w.r.Client, nil)
	outcomes.Record(ctx, true, false) // the wave was healthy until now
	p := w.params()
	p.Budget, p.Client = nil, failingWorkers{outcomes}
	p.Idle, p.QueueCheck, p.PauseCheck = 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	f := pacing.NewFeeder(p)
	t.Cleanup(run(t, f))

	time.Sleep(3 * time.Second)
	if got := f.Stats().Released; got > 100 {
		t.Fatalf("released %d of 1000 rotations in 3 s, every one of them failing, want the wave slowed within about %d failed runs",
			got, pacing.FailingStreak)
	}
	outcomes.Record(ctx, true, false)
	if h, err := pacing.ReadWaveHealth(ctx, w.r.Client, time.Now()); err != nil || h.Streak != 0 || h.Failing() {
		t.Fatalf("after a rotation: %+v failing %v (%v), want no streak, not failing", h, h.Failing(), err)
	}
}

// One issuer shard of two down: every other rotation fails, and each
// failure is run again a dozen times over asynq's back-off, so that failed
// runs outnumber rotations many times over. That is no outage of the whole
// wave: it must keep the budget's pace, the retries making no streak.
func TestAPartialOutageWithItsRetriesIsNoStreak(t *testing.T) {
	w := newWorld(t, 10, 2)
	ctx := t.Context()
	outcomes := pacing.NewOutcomes(w.r.Client, nil)
	for i := range 40 {
		if i%3 == 0 {
			outcomes.Record(ctx, true, false)
			continue
		}
		outcomes.Record(ctx, false, false)
		for range 12 {
			outcomes.Record(ctx, false, true)
		}
	}
	h, err := pacing.ReadWaveHealth(ctx, w.r.Client, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if h.Failing() {
		t.Fatalf("a partial outage, a rotation every 2 failures and their retries: %+v failing, want the budget's pace", h)
	}
}

// A wave slowed because its rotations fail for good at their first run (the
// issuer refusing rekey's signature: no retry of asynq's follows) sees only
// its probes fail once the failures that slowed it have left the window:
// four a minute, fewer than FailingAfter. It must stay slowed until one
// rotates, not go back to the budget's pace, into the same failures, about
// every minute.
func TestASlowedWaveStaysSlowedWhileOnlyItsProbesFail(t *testing.T) {
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	w.hold(t, 100)
	ctx := t.Context()
	var ahead atomic.Int64 // how far the shared clock is ahead of the machine's
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	outcomes := pacing.NewOutcomes(w.r.Client, clock)
	for range pacing.FailingAfter {
		outcomes.Record(ctx, false, false)
	}
	p := w.params()
	p.Client, p.Now = failingWorkers{outcomes}, clock
	p.Idle, p.QueueCheck, p.PauseCheck = 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	f := pacing.NewFeeder(p)
	t.Cleanup(run(t, f))
	until(2*time.Second, func() bool { return f.Stats().Released >= 1 })
	if got := f.Stats().Released; got != 1 {
		t.Fatalf("released %d rotations of a failing wave, want 1: a probe", got)
	}

	// A minute and a half later: the failures that slowed the wave are out
	// of the window, the probes of the last minute failed in it.
	ahead.Store(int64(pacing.FailingWindow + 30*time.Second))
	for range 3 {
		outcomes.Record(ctx, false, false)
	}
	if h, err := pacing.ReadWaveHealth(ctx, w.r.Client, clock()); err != nil || !h.Failing() {
		t.Errorf("only the probes failing, none rotating: %+v failing %v (%v), want failing", h, h.Failing(), err)
	}
	time.Sleep(pacing.FailingCheck + 2*time.Second)
	if got := f.Stats().Released; got != 1 {
		t.Fatalf("released %d rotations while only the probes failed and none rotated, want the one probe", got)
	}
	outcomes.Record(ctx, true, false)
	until(pacing.FailingCheck+2*time.Second, func() bool { return f.Stats().Released >= 10 })
	if got := f.Stats().Released; got < 10 {
		t.Fatalf("released %d rotations after one rotated, want the wave going again", got)
	}
}

// A slowed wave whose next held rotation turns out released already (its
// task exists: a feeder died before it took the id out) drops it and
// releases the next as the probe: a drop is no probe, and the wave must not
// wait another ProbeEvery for one.
func TestASlowedWaveProbesPastARotationReleasedAlready(t *testing.T) {
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	ids := w.hold(t, 3)
	w.enqueue(t, ids[0])
	w.failedRuns(t, pacing.FailingAfter)
	f := w.feeder()
	t.Cleanup(run(t, f))
	until(3*time.Second, func() bool { return f.Stats().Released >= 1 })
	if s := f.Stats(); s.Dropped != 1 || s.Released != 1 {
		t.Fatalf("feeder stats %+v 3 s into a slowed wave whose first held rotation was released already, "+
			"want it dropped and the next released as the probe", s)
	}
}

// lostPipelineReply fails, once armed, every pipeline after Redis ran it:
// the reply lost on the wire (a read timeout), the commands applied.
type lostPipelineReply struct{ armed atomic.Bool }

func (*lostPipelineReply) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*lostPipelineReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *lostPipelineReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil && h.armed.Load() {
			return errors.New("i/o timeout")
		}
		return err
	}
}

// A run counted whose reply Redis lost still leaves keys that expire: a
// bucket or a streak kept for ever would be a key a bucket leaked, and a
// streak no time ends.
func TestOutcomesWhoseReplyIsLostStillExpire(t *testing.T) {
	w := newWorld(t, 10, 2)
	ctx := t.Context()
	lossy := redis.NewClient(w.r.Client.Options())
	t.Cleanup(func() { _ = lossy.Close() })
	lost := &lostPipelineReply{}
	lossy.AddHook(lost)
	if err := lossy.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	lost.armed.Store(true)
	outcomes := pacing.NewOutcomes(lossy, nil)
	outcomes.Record(ctx, false, false)
	outcomes.Record(ctx, true, false)
	keys, err := w.r.Client.Keys(ctx, "rekey:pace:outcome:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no run counted")
	}
	for _, k := range keys {
		if ttl := w.r.Client.TTL(ctx, k).Val(); ttl <= 0 || ttl > 2*pacing.FailingWindow {
			t.Errorf("%s expires in %v, want within %v", k, ttl, 2*pacing.FailingWindow)
		}
	}
}

// retrying runs the tasks of rotations ids through a worker whose every
// run fails, until each waits in asynq's retry set an hour ahead after
// failures[i] failed runs, the earlier ones a millisecond apart. The tasks
// of the rotations foreign names are another app's: under an id of its own.
func (w *world) retrying(t *testing.T, ids []string, failures []int, foreign ...string) {
	t.Helper()
	want := map[string]int{}
	taskIDs := map[string]string{}
	for i, id := range ids {
		want[id], taskIDs[id] = failures[i], tasks.RotateTaskID(id)
		if slices.Contains(foreign, id) {
			taskIDs[id] = "partner:" + id
		}
		if _, err := w.insp.GetTaskInfo(pacing.Queue, taskIDs[id]); err == nil {
			continue // the test enqueued a task of its own
		}
		w.enqueue(t, id, asynq.TaskID(taskIDs[id]))
	}
	srv := asynq.NewServerFromRedisClient(w.r.Client, asynq.Config{
		Queues: map[string]int{pacing.Queue: 1}, DelayedTaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(n int, _ error, task *asynq.Task) time.Duration {
			if p, _ := tasks.ParseRotate(task); n+1 < want[p.RotationID] {
				return time.Millisecond
			}
			return time.Hour
		},
	})
	fail := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return errors.New("issuer mint: status 503") })
	if err := srv.Start(fail); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	until(10*time.Second, func() bool {
		for _, id := range ids {
			info, err := w.insp.GetTaskInfo(pacing.Queue, taskIDs[id])
			if err != nil || info.State != asynq.TaskStateRetry || info.Retried != want[id] {
				return false
			}
		}
		return true
	})
}

// backedOff returns a new rotation whose task waits in asynq's retry set an
// hour ahead after FastRetries+1 failed runs: past its quick retries.
func (w *world) backedOff(t *testing.T) string {
	t.Helper()
	id := tasks.NewID("rot")
	w.retrying(t, []string{id}, []int{retry.FastRetries + 1})
	return id
}

// task is asynq's info on rotation id's task.
func (w *world) task(t *testing.T, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := w.insp.GetTaskInfo(pacing.Queue, tasks.RotateTaskID(id))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// outageMarked reports whether a feeder marked the wave's outage.
func (w *world) outageMarked(ctx context.Context) bool {
	return w.r.Client.Exists(ctx, "rekey:pace:outcome:outage").Val() == 1
}

// When the first run of a slowed wave rotates, the rotations the outage
// left waiting out asynq's back-off are held again, first in line, and
// released with a paid token: they run at once instead of an hour later.
// A task still in its quick retries is left to asynq.
func TestAResumedWaveBringsTheOutagesRotationsForward(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	backedOff, quick, foreign := tasks.NewID("rot"), tasks.NewID("rot"), tasks.NewID("rot")
	w.retrying(t, []string{backedOff, quick, foreign},
		[]int{retry.FastRetries + 1, retry.FastRetries - 1, retry.FastRetries + 1}, foreign)
	w.hold(t, 30)
	ctx := t.Context()
	outcomes := w.failedRuns(t, pacing.FailingAfter)
	f := w.feeder()
	t.Cleanup(run(t, f))
	time.Sleep(time.Second)
	if got := f.Stats().Released; got != 1 {
		t.Fatalf("released %d rotations in 1 s of a failing wave, want 1: a probe", got)
	}

	outcomes.Record(ctx, true, false)
	state := func(id string) asynq.TaskState { return w.task(t, id).State }
	until(pacing.FailingCheck+2*time.Second, func() bool { return state(backedOff) == asynq.TaskStatePending })
	if got := state(backedOff); got != asynq.TaskStatePending {
		t.Fatalf("the rotation in asynq's back-off is %v once the wave rotates again, want pending", got)
	}
	// The probe, the rotation released on the look that found the wave
	// healthy (one at a time: a background burst of one), then the one
	// brought forward, first in line.
	if got := w.pendingOrder(t); slices.Index(got, backedOff) != 2 {
		t.Errorf("pending %v, want %s third: after the probe and the release with the look", got, backedOff)
	}
	if !pacing.NewPaid(w.r.Client).Take(ctx, backedOff) {
		t.Errorf("the rotation brought forward was released without a paid token")
	}
	if got := state(quick); got != asynq.TaskStateRetry {
		t.Errorf("the rotation in its quick retries is %v, want left to asynq (retry)", got)
	}
	time.Sleep(time.Second) // releases past the one brought forward
	if slices.Contains(w.pendingOrder(t), foreign) {
		t.Errorf("another app's rotate task under its own id was brought forward: a second task of its rotation runs")
	}
}

// An outage that lets a run through now and then (an issuer flapping, a
// partial Heroku outage) slows and resumes the wave again and again. A
// rotation waiting out asynq's back-off is brought forward once, not at
// every resume: each run brought forward spends one of its retries
// (tasks.RotateMaxRetry), and the back-off meant to outlast hours of
// outage would run out within minutes.
func TestAFlappingOutageBringsARotationForwardOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2, 2)
	w.knowQueue(t)
	backedOff := w.backedOff(t)
	w.hold(t, 200)
	ctx := t.Context()
	// Workers whose every run fails, each task then waiting an hour.
	srv := asynq.NewServerFromRedisClient(w.r.Client, asynq.Config{
		Queues: map[string]int{pacing.Queue: 1}, DelayedTaskCheckInterval: 20 * time.Millisecond,
		LogLevel:       asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	fail := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return errors.New("issuer mint: status 503") })
	if err := srv.Start(fail); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	retried := func() int { return w.task(t, backedOff).Retried }
	outcomes := w.failedRuns(t, pacing.FailingStreak)
	p := w.params()
	scans := &retryScans{Inspector: w.insp}
	p.Queues = scans
	f := pacing.NewFeeder(p)
	t.Cleanup(run(t, f))
	time.Sleep(time.Second)
	for cycle := 1; cycle <= 2; cycle++ {
		outcomes.Record(ctx, true, false) // a run goes through: the wave resumes
		until(pacing.FailingCheck+3*time.Second, func() bool { return retried() > retry.FastRetries+1 })
		w.failedRuns(t, pacing.FailingStreak) // and fails again: the wave slows
		time.Sleep(pacing.FailingCheck + time.Second)
	}
	outcomes.Record(ctx, true, false)
	time.Sleep(pacing.FailingCheck + 2*time.Second)
	if got, want := retried(), retry.FastRetries+2; got != want {
		t.Errorf("the rotation in asynq's back-off failed %d times after the wave resumed three times, want %d: "+
			"brought forward once", got, want)
	}
	// Each read of the retry set costs Redis a few commands a task: one a
	// five minutes at most however often the outage ends.
	if n := scans.n.Load(); n != 1 {
		t.Errorf("the retry set was read %d times in three ends of the outage within a minute, want 1", n)
	}
}

// A wave released whole before its failures showed holds nothing to slow,
// and the feeder that saw the outage may not lead when it ends (killed in
// it, a standby taking over): the outage is marked in Redis, so that the
// feeder leading when a run rotates again still brings the rotations the
// outage left in asynq's back-off forward.
func TestTheFeederLeadingAfterTheOutageBringsItsRotationsForward(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	backedOff := w.backedOff(t)
	ctx := t.Context()
	outcomes := w.failedRuns(t, pacing.FailingAfter)
	stop := run(t, w.feeder())
	until(2*time.Second, func() bool { return w.outageMarked(ctx) })
	stop()

	f := w.feeder()
	t.Cleanup(run(t, f))
	outcomes.Record(ctx, true, false)
	until(pacing.FailingCheck+2*time.Second, func() bool { return f.Stats().Released == 1 })
	if info := w.task(t, backedOff); info.State != asynq.TaskStatePending {
		t.Errorf("the rotation in asynq's back-off is %v once a run rotates under the next feeder, want pending", info.State)
	}
}

// retryReadFails is asynq's inspector whose listing of the retry set fails
// its first fails times (a Redis blip).
type retryReadFails struct {
	*asynq.Inspector
	fails atomic.Int32
}

func (q *retryReadFails) ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
	if q.fails.Add(-1) >= 0 {
		return nil, errors.New("read tcp: i/o timeout")
	}
	return q.Inspector.ListRetryTasks(queue, opts...)
}

// The outage's mark stays until its rotations are brought forward: a
// failed read of asynq's retry set when a run rotates again leaves it for
// the next look, which brings them forward, instead of losing them to
// hours of back-off.
func TestAFailedLookAtTheRetrySetBringsTheOutagesRotationsForwardLater(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100, 2)
	w.knowQueue(t)
	backedOff := w.backedOff(t)
	ctx := t.Context()
	outcomes := w.failedRuns(t, pacing.FailingAfter)
	q := &retryReadFails{Inspector: w.insp}
	q.fails.Store(1)
	p := w.params()
	p.Queues = q
	p.Idle, p.QueueCheck, p.PauseCheck = 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	f := pacing.NewFeeder(p)
	t.Cleanup(run(t, f))
	until(2*time.Second, func() bool { return w.outageMarked(ctx) })

	outcomes.Record(ctx, true, false)
	until(2*pacing.FailingCheck+2*time.Second, func() bool { return f.Stats().Released == 1 })
	if q.fails.Load() == 1 {
		t.Fatal("the feeder never read asynq's retry set")
	}
	if info := w.task(t, backedOff); info.State != asynq.TaskStatePending {
		t.Errorf("the rotation in asynq's back-off is %v after a failed read of the retry set and a run rotated, "+
			"want pending: brought forward by the next look", info.State)
	}
}

// retryScans counts the reads of asynq's retry set.
type retryScans struct {
	*asynq.Inspector
	n atomic.Int64
}

func (q *retryScans) ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
	q.n.Add(1)
	return q.Inspector.ListRetryTasks(queue, opts...)
}

// Another app's rotate task under rekey's id whose payload holds no request
// time (built by hand, not by tasks.NewRotateTask), or one its producer's
// clock dated a day ahead, is brought forward in line at the feeder's time,
// on Redis's clock: not at the Unix epoch, ahead of every wave and shown 56
// years old by rekey_pace_oldest_held_seconds, nor behind a day of waves.
func TestARotationBroughtForwardWithoutItsRequestTimeTakesTheFeedersTime(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1, 2)
	w.knowQueue(t)
	ctx := t.Context()
	undated, ahead := tasks.NewID("rot"), tasks.NewID("rot")
	for id, payload := range map[string]string{
		undated: `{"instance_id":"inst-1","rotation_id":"` + undated + `"}`,
		ahead:   `{"instance_id":"inst-2","rotation_id":"` + ahead + `","requested_at":"` + time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339) + `"}`,
	} {
		task := asynq.NewTask(tasks.TypeRotate, []byte(payload))
		if _, err := w.client.Enqueue(task, asynq.Queue(pacing.Queue), asynq.TaskID(tasks.RotateTaskID(id))); err != nil {
			t.Fatal(err)
		}
	}
	w.retrying(t, []string{undated, ahead}, []int{retry.FastRetries + 1, retry.FastRetries + 1})
	w.hold(t, 30) // a wave at one release a second: the rest stays held
	outcomes := w.failedRuns(t, pacing.FailingAfter)
	t.Cleanup(run(t, w.feeder()))
	time.Sleep(time.Second)
	outcomes.Record(ctx, true, false) // a run goes through: the wave resumes
	scores := map[string]float64{}
	until(pacing.FailingCheck+3*time.Second, func() bool {
		for _, id := range []string{undated, ahead} {
			if s, err := w.r.Client.ZScore(ctx, "rekey:pace:held", id).Result(); err == nil {
				scores[id] = s
			}
		}
		return len(scores) == 2
	})
	now, err := w.r.Client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{undated, ahead} {
		s, ok := scores[id]
		if at := time.UnixMilli(int64(s)); !ok || now.Sub(at).Abs() > 10*time.Second {
			t.Errorf("%s brought forward at %v in line (held %v), want about now, %v", id, at, ok, now)
		}
	}
}
