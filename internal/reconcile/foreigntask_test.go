package reconcile_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// countingServer runs an asynq server on queues with rekey's retry contract
// (retry.Record, retry.IsFailure, delay) and a handler that only counts its
// runs: another app's tasks below never reach it, the sweep's fresh ones do.
func countingServer(t *testing.T, w *world, delay asynq.RetryDelayFunc, queues ...string) *atomic.Int64 {
	t.Helper()
	var runs atomic.Int64
	qs := map[string]int{}
	for _, q := range queues {
		qs[q] = 1
	}
	srv := asynq.NewServerFromRedisClient(w.r.Client, asynq.Config{Concurrency: 1, Queues: qs,
		IsFailure: retry.IsFailure, RetryDelayFunc: delay,
		TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel})
	if err := srv.Start(retry.Record(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		runs.Add(1)
		return nil
	}))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return &runs
}

func waitState(t *testing.T, w *world, queue, id string, within time.Duration, ok func(*asynq.TaskInfo) bool) *asynq.TaskInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, err := w.insp.GetTaskInfo(queue, id)
		if err == nil && ok(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: %+v, %v", id, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAStrayRevokeTaskPastItsDeadlineDoesNotHoldUpTheRevocation: another
// app enqueues, through tasks/, a revoke task for an instance's current
// credential with a deadline that has passed (asynq.Deadline) and the
// package's default retries. asynq fails it before any handler runs
// (processor: "already canceled"), so the handler's stray-task rule never
// drops it: it waits in asynq's retry set under the credential's own revoke
// task id, and once a rotation supersedes the credential, rekey's revoke
// task cannot be enqueued (ErrTaskIDConflict, taken for success). The sweep
// replaces it once the revocation is due, as it replaces an archived one:
// the credential is not left valid until the stray's retries are spent
// (about three weeks).
func TestAStrayRevokeTaskPastItsDeadlineDoesNotHoldUpTheRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.sweep = reconcile.New(reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: w.insp,
		Logger: zerolog.Nop(), Slack: time.Second, Now: func() time.Time { return w.now }})
	w.register(t, "inst-s")
	stray, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-s", CredentialID: "cred-0"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The deadline at the enqueue (the constructor refuses one already past).
	if _, err := w.q.Enqueue(stray, asynq.Deadline(time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	runs := countingServer(t, w, retry.Delay, tasks.QueueRevoke)
	id := tasks.RevokeTaskID("inst-s", "cred-0")
	// Past rekey's three fast retries, asynq's own back-off applies.
	waitState(t, w, tasks.QueueRevoke, id, 20*time.Second, func(i *asynq.TaskInfo) bool {
		return i.State == asynq.TaskStateRetry && i.Retried > retry.FastRetries
	})
	// A rotation supersedes cred-0, due at once; the handler's enqueue of
	// its revoke task is refused as a duplicate, which it takes for success.
	prev := w.promoted(t, "inst-s", time.Millisecond)
	own, _ := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: prev.InstanceID, CredentialID: prev.CredentialID}, prev.RevokeAt)
	if _, err := w.q.Enqueue(own); err == nil {
		t.Fatal("rekey's revoke task was enqueued: the stray did not hold its id")
	}
	w.now = time.Now().Add(10 * time.Minute)
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RevokesEnqueued != 1 {
		t.Fatalf("Sweep = %+v, %v; want the stray replaced by rekey's revoke task", res, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() == 0 {
		if time.Now().After(deadline) {
			info, _ := w.insp.GetTaskInfo(tasks.QueueRevoke, id)
			t.Fatalf("revocation of %s due since %s: no run reached the handler within 10 s; the task under its id: %+v",
				prev.CredentialID, prev.RevokeAt.Format(time.RFC3339), info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAnArchivedForeignRotateTaskRunsAgainAsRekeys: a rotate task of
// another app's (tasks/, with asynq.Deadline) whose push was attempted as
// its deadline passed fails every later run before any handler runs, and
// asynq archives it. Since Heroku may hold the credential, the sweep runs
// the rotation again, as a fresh task with rekey's options: run again as it
// was, with the same past deadline, it would fail at once every hour for
// ever, the rotation in flight for good (every later request joins it, I4).
func TestAnArchivedForeignRotateTaskRunsAgainAsRekeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	// The task's first run: claim, mint, push attempted, then the deadline.
	w.pushedRotation(t, "inst-d", "rot-d", tasks.QueueDefault, 1, 0)
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-d", RotationID: "rot-d"}, asynq.MaxRetry(2))
	if err != nil {
		t.Fatal(err)
	}
	// The deadline at the enqueue (the constructor refuses one already past).
	if _, err := w.q.Enqueue(task, asynq.Deadline(time.Now().Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	runs := countingServer(t, w, func(int, error, *asynq.Task) time.Duration { return 0 }, tasks.QueueDefault)
	id := tasks.RotateTaskID("rot-d")
	waitState(t, w, tasks.QueueDefault, id, 20*time.Second, func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateArchived })
	w.now = time.Now().Add(3 * time.Hour)
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RotationsResumed != 1 {
		t.Fatalf("Sweep = %+v, %v; want the rotation run again", res, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() == 0 {
		if time.Now().After(deadline) {
			info, _ := w.insp.GetTaskInfo(tasks.QueueDefault, id)
			t.Fatalf("no run of rot-d reached the handler within 10 s of the sweep; its task: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestARotationWithoutAQueueIsEnqueuedOnTheDefaultQueue: a rotation in
// flight whose record names no queue (written before rotations kept one)
// and whose task is in no queue is enqueued on the default queue. It made
// every sweep fail at it before (asynq refuses an empty queue name), so no
// rotation behind it in the index was looked at again: one whose task was
// lost stayed in flight for good (I4: every later request joins it).
func TestARotationWithoutAQueueIsEnqueuedOnTheDefaultQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	for _, id := range []string{"inst-a-legacy", "inst-b-lost"} {
		w.register(t, id)
	}
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-a-legacy", RotationID: "rot-a"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-b-lost", RotationID: "rot-b", Queue: tasks.QueueDefault}); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for range 3 {
		if _, err := w.sweep.Sweep(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, rot := range []string{"rot-a", "rot-b"} {
		if _, err := w.insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID(rot)); err != nil {
			t.Errorf("after 3 sweeps %s's lost task is still not enqueued (%v); sweep errors: %v", rot, err, errs)
		}
	}
}

// TestAForeignArchivedBulkTaskIsHeldAgainOnce: on the bulk queue, another
// app's archived rotate task with a deadline makes way for the feeder: the
// rotation is held again, at its place in line, and counted once, as held
// again, not also as resumed.
func TestAForeignArchivedBulkTaskIsHeldAgainOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	info := w.archivedPushedRotation(t, "inst-h", "rot-h", 1, 0, asynq.Deadline(time.Now().Add(-time.Second)))
	q := pacing.NewClient(w.q, w.r.Client, nil)
	sweep := reconcile.New(reconcile.Params{Store: w.st, Enqueuer: q, Inspector: w.insp,
		Logger: zerolog.Nop(), Now: func() time.Time { return time.Now().Add(3 * time.Hour) }})
	res, err := sweep.Sweep(ctx)
	if err != nil || res.RotationsReheld != 1 || res.RotationsResumed != 0 || res.RotationsEnqueued != 0 {
		t.Fatalf("Sweep = %+v, %v; want rot-h held again, counted once", res, err)
	}
	if n, err := pacing.Held(ctx, w.r.Client); err != nil || n != 1 {
		t.Errorf("%d rotations held (%v), want rot-h", n, err)
	}
	if _, err := w.insp.GetTaskInfo(tasks.QueueBulk, info.ID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the foreign task: %v; want it gone", err)
	}
}

// TestAForeignTaskThatStartsRunningAsTheSweepReplacesItEndsNoSweep: another
// app's revoke task (tasks/, with retries rekey does not give) waits under a
// due revocation's task id, and a worker starts it between the sweep's look
// at it and the sweep's delete, which asynq refuses for a running task. The
// sweep leaves that revocation to the next sweep, which finds the task
// running or gone, and goes on: the revocation due after it, whose task was
// lost, is enqueued by the same sweep.
func TestAForeignTaskThatStartsRunningAsTheSweepReplacesItEndsNoSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.register(t, "inst-f")
	first := w.promoted(t, "inst-f", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	w.register(t, "inst-g")
	later := w.promoted(t, "inst-g", time.Millisecond)
	foreign, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: first.InstanceID, CredentialID: first.CredentialID},
		first.RevokeAt, asynq.ProcessIn(0), asynq.MaxRetry(1))
	if err != nil {
		t.Fatal(err)
	}
	info, err := w.q.Enqueue(foreign)
	if err != nil {
		t.Fatal(err)
	}
	// A worker whose run of the foreign task lasts until the test ends.
	release := make(chan struct{})
	startWorker := func() {
		srv := asynq.NewServerFromRedisClient(w.r.Client, asynq.Config{Concurrency: 1,
			Queues: map[string]int{tasks.QueueRevoke: 1}, TaskCheckInterval: 10 * time.Millisecond,
			LogLevel: asynq.FatalLevel})
		if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		t.Cleanup(func() { close(release) })
		waitState(t, w, tasks.QueueRevoke, info.ID, 10*time.Second, func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateActive })
	}
	sweep := reconcile.New(reconcile.Params{Store: w.st, Enqueuer: w.q,
		Inspector: &steppedInspector{Inspector: w.insp, id: info.ID, step: startWorker},
		Logger:    zerolog.Nop(), Now: func() time.Time { return w.now }})
	res, err := sweep.Sweep(ctx)
	if err != nil || res.RevokesEnqueued != 1 {
		t.Fatalf("Sweep = %+v, %v; want the running foreign task left alone and %s's revoke task enqueued",
			res, err, later.InstanceID)
	}
	if _, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(later.InstanceID, later.CredentialID)); err != nil {
		t.Errorf("%s's revoke task: %v; want it enqueued", later.InstanceID, err)
	}
	if got, err := w.insp.GetTaskInfo(tasks.QueueRevoke, info.ID); err != nil || got.State != asynq.TaskStateActive {
		t.Errorf("the foreign task: %+v, %v; want it still running", got, err)
	}
}

// TestAnArchivedForeignRotateTaskWithAShortTimeoutRunsAgainAsRekeys: another
// app's rotate task (tasks/, with asynq.Timeout(time.Second)) whose push was
// attempted is archived. Heroku may hold the credential, so the sweep runs
// the rotation again; run again as it was, every run is cut off after its
// one second, before a run of rekey's (a push to a Heroku that is slow to
// answer, a wait for the shared budget) can end, and it is archived again:
// the rotation would run hourly for ever without promoting, in flight for
// good (every later request joins it, I4). It makes way for rekey's own
// task, whose runs have tasks.RotateTimeout.
func TestAnArchivedForeignRotateTaskWithAShortTimeoutRunsAgainAsRekeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.pushedRotation(t, "inst-t", "rot-t", tasks.QueueDefault, 1, 0)
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-t", RotationID: "rot-t"},
		asynq.Timeout(time.Second), asynq.MaxRetry(1))
	if err != nil {
		t.Fatal(err)
	}
	info, err := w.q.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.insp.ArchiveTask(tasks.QueueDefault, info.ID); err != nil {
		t.Fatal(err)
	}
	// A run takes two seconds, as a push to a slow Heroku does.
	var finished atomic.Int64
	srv := asynq.NewServerFromRedisClient(w.r.Client, asynq.Config{Concurrency: 1,
		Queues: map[string]int{tasks.QueueDefault: 1}, IsFailure: retry.IsFailure,
		RetryDelayFunc:    func(int, error, *asynq.Task) time.Duration { return 0 },
		TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel})
	if err := srv.Start(retry.Record(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-time.After(2 * time.Second):
			finished.Add(1)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RotationsResumed != 1 {
		t.Fatalf("Sweep = %+v, %v; want the rotation run again", res, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for finished.Load() == 0 {
		if time.Now().After(deadline) {
			info, _ := w.insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID("rot-t"))
			t.Fatalf("no run of rot-t ended within 10 s of the sweep; its task: state %s, timeout %s, retried %d",
				info.State, info.Timeout, info.Retried)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
