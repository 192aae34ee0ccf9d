package reconcile_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

type world struct {
	r     *redistest.Redis
	st    *store.Store
	q     *asynq.Client
	insp  *asynq.Inspector
	sweep *reconcile.Sweeper
	now   time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	r := redistest.New(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	w := &world{r: r, now: time.Now().Add(3 * time.Hour)}
	w.st = store.New(r.Client, sealer)
	w.q = asynq.NewClientFromRedisClient(r.Client)
	w.insp = asynq.NewInspectorFromRedisClient(r.Client)
	w.sweep = reconcile.New(reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: w.insp,
		Logger: zerolog.Nop(), Now: func() time.Time { return w.now }})
	return w
}

// rotated registers an instance and rotates it once through the store,
// leaving its provisioning credential previous, due in an hour.
func (w *world) rotated(t *testing.T, id string) *store.Revocation {
	t.Helper()
	w.register(t, id)
	return w.promoted(t, id, time.Hour)
}

// register registers instance id, its current credential cred-0.
func (w *world) register(t *testing.T, id string) {
	t.Helper()
	if err := w.st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
}

// promoted rotates the registered instance id once through the store
// (rotation rot-<id>, credential cred-1), leaving cred-0 previous, due
// after grace.
func (w *world) promoted(t *testing.T, id string, grace time.Duration) *store.Revocation {
	t.Helper()
	ctx := context.Background()
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: "rot-" + id}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("v-" + id)} // each instance's own
	if err := w.st.SavePending(ctx, id, "rot-"+id, "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	prev, err := w.st.Promote(ctx, id, "rot-"+id, "cred-1", grace, "")
	if err != nil {
		t.Fatal(err)
	}
	return prev
}

func TestLostRevokeTaskIsEnqueuedAgain(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	prev := w.rotated(t, "inst-1")
	res, err := w.sweep.Sweep(context.Background())
	if err != nil || res.RevokesEnqueued != 1 {
		t.Fatalf("Sweep = %+v, %v; want one revoke enqueued", res, err)
	}
	info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(prev.InstanceID, prev.CredentialID))
	if err != nil {
		t.Fatalf("revoke task not found: %v", err)
	}
	if res, _ := w.sweep.Sweep(context.Background()); res.RevokesEnqueued != 0 {
		t.Fatalf("second sweep enqueued %d revokes, want 0 (task %s exists)", res.RevokesEnqueued, info.State)
	}
}

// An archived revoke task with options rekey does not give (no retries,
// as another app's task through the tasks package may have) is replaced at
// once by a task of rekey's own, pending since its revoke time is past:
// run again as it is, it would fail the same way (I3). rekey's own tasks
// whose retries the issuer used up rest an hour first
// (TestAdversarialStrayRevokeTaskForTheCurrentCredential in internal/e2e
// covers the stray tasks end to end).
func TestArchivedRevokeTaskRunsAgain(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	prev := w.rotated(t, "inst-2")
	task, _ := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: prev.InstanceID, CredentialID: prev.CredentialID}, prev.RevokeAt)
	info, err := w.q.Enqueue(task, asynq.MaxRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.insp.ArchiveTask(tasks.QueueRevoke, info.ID); err != nil {
		t.Fatal(err)
	}
	res, err := w.sweep.Sweep(context.Background())
	if err != nil || res.RevokesEnqueued != 1 {
		t.Fatalf("Sweep = %+v, %v; want the archived revoke replaced", res, err)
	}
	got, _ := w.insp.GetTaskInfo(tasks.QueueRevoke, info.ID)
	if got.State != asynq.TaskStatePending || got.MaxRetry != tasks.RevokeMaxRetry {
		t.Fatalf("revoke task is %s with %d retries, want pending with rekey's %d", got.State, got.MaxRetry, tasks.RevokeMaxRetry)
	}
}

func TestStaleRotationIsEnqueuedOrEnded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	for _, id := range []string{"lost", "archived"} {
		if err := w.st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
			ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: "rot-" + id, Queue: tasks.QueueBulk}); err != nil {
			t.Fatal(err)
		}
	}
	task, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "archived", RotationID: "rot-archived"}, asynq.Queue(tasks.QueueBulk))
	info, err := w.q.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.insp.ArchiveTask(tasks.QueueBulk, info.ID); err != nil {
		t.Fatal(err)
	}
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RotationsEnqueued != 1 || res.RotationsFailed != 1 {
		t.Fatalf("Sweep = %+v, %v; want one rotation enqueued and one ended", res, err)
	}
	if _, err := w.insp.GetTaskInfo(tasks.QueueBulk, tasks.RotateTaskID("rot-lost")); err != nil {
		t.Fatalf("lost rotation not enqueued: %v", err)
	}
	in, _ := w.st.Instance(ctx, "archived")
	if in.InFlight != "" || in.CurrentCredential != "cred-0" || in.LastError == "" {
		t.Fatalf("instance after giving up = %+v; want free, current kept, error recorded", in)
	}
}

func TestArchivedRotationAfterAPushRunsAgainInsteadOfDiscarding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.archivedPushedRotation(t, "pushed", "rot-p", 1, 0)
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RotationsResumed != 1 || res.RotationsFailed != 0 {
		t.Fatalf("Sweep = %+v, %v; want the rotation run again, not ended", res, err)
	}
	c, _ := w.st.Credential(ctx, "pushed", "cred-1")
	if c.State != store.CredentialPending {
		t.Fatalf("credential is %s, want still pending: Heroku may hold it", c.State)
	}
}

// A rotation whose every push Heroku refused (409, each time) and whose
// task's retries ran out cannot land any more: running it again hourly
// would only push again, and keep the instance in flight for good. The
// sweep ends it; its credential, pushed, is kept unconfirmed rather than
// revoked (I1), and the instance is free.
func TestArchivedRotationWhosePushesWereAllRefusedEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.archivedPushedRotation(t, "refused", "rot-r", 3, 3)
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RotationsFailed != 1 || res.RotationsResumed != 0 {
		t.Fatalf("Sweep = %+v, %v; want the rotation ended, not run again", res, err)
	}
	if c, _ := w.st.Credential(ctx, "refused", "cred-1"); c.State != store.CredentialUnconfirmed {
		t.Errorf("credential is %s, want unconfirmed: never revoked on its own", c.State)
	}
	if in, _ := w.st.Instance(ctx, "refused"); in.InFlight != "" || in.CurrentCredential != "cred-0" {
		t.Errorf("instance after the sweep = %+v; want free, cred-0 current", in)
	}
}

// archivedPushedRotation registers instance id with cred-0 and leaves its
// bulk rotation rot minted with cred-1, pushes attempted as pushedRotation
// says, and its rotate task, with opts after rekey's, archived, as asynq
// leaves a task whose retries ran out.
func (w *world) archivedPushedRotation(t *testing.T, id, rot string, attempts, refused int, opts ...asynq.Option) *asynq.TaskInfo {
	t.Helper()
	w.pushedRotation(t, id, rot, tasks.QueueBulk, attempts, refused)
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: id, RotationID: rot}, asynq.Queue(tasks.QueueBulk))
	if err != nil {
		t.Fatal(err)
	}
	// opts at the enqueue, as an app's own client may pass them (the
	// constructor refuses a deadline already past).
	info, err := w.q.Enqueue(task, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.insp.ArchiveTask(tasks.QueueBulk, info.ID); err != nil {
		t.Fatal(err)
	}
	return info
}

// pushedRotation registers instance id with cred-0 and leaves its rotation
// rot on queue minted with cred-1, attempts pushes attempted of which
// refused were refused (settled).
func (w *world) pushedRotation(t *testing.T, id, rot, queue string, attempts, refused int) {
	t.Helper()
	ctx := context.Background()
	w.register(t, id)
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: rot, Queue: queue}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("v-" + id + "-" + rot)}
	if err := w.st.SavePending(ctx, id, rot, "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	in, err := w.st.Instance(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range attempts {
		if err := w.st.MarkPushAttempt(ctx, rot, in.Target()); err != nil {
			t.Fatal(err)
		}
		if i < refused {
			if err := w.st.SettlePush(ctx, rot, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A held bulk rotation whose id never reached the feeder's held set (its
// Hold failed) has no task either: the sweep holds it again, at its place
// in line, instead of leaving the instance in flight for good. A task an
// earlier version held (scheduled a week ahead, no held id) is held again
// the same way.
func TestSweepHoldsAgainAHeldRotationMissingFromTheHeldSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	st := w.st
	q := pacing.NewClient(w.q, w.r.Client, nil)
	for _, id := range []string{"inst", "older"} {
		if err := st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
			ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Claim(ctx, store.RotationRequest{InstanceID: "inst", RotationID: "rot-1", Queue: tasks.QueueBulk}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Claim(ctx, store.RotationRequest{InstanceID: "older", RotationID: "rot-0", Queue: tasks.QueueBulk}); err != nil {
		t.Fatal(err)
	}
	task, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "older", RotationID: "rot-0"})
	if _, err := q.Enqueue(task, asynq.Queue(tasks.QueueBulk), asynq.ProcessIn(pacing.HoldFor)); err != nil {
		t.Fatal(err)
	}
	sweep := reconcile.New(reconcile.Params{Store: st, Enqueuer: q, Inspector: w.insp,
		Logger: zerolog.Nop(), Now: func() time.Time { return w.now }})
	for i, want := range []int{2, 0} {
		res, err := sweep.Sweep(ctx)
		if err != nil || res.RotationsReheld != want || res.RotationsEnqueued != 0 {
			t.Errorf("sweep #%d = %+v, %v; want %d held again and none enqueued", i+1, res, err, want)
		}
	}
	if n, err := pacing.Held(ctx, w.r.Client); err != nil || n != 2 {
		t.Errorf("%d rotations held (%v), want rot-0 and rot-1", n, err)
	}
	if _, err := w.insp.GetTaskInfo(tasks.QueueBulk, tasks.RotateTaskID("rot-1")); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("rot-1's task: %v; want none until the feeder releases it", err)
	}
}

// rekey's own revoke task whose retries a failing issuer used up rests an
// hour, then is replaced by a fresh task of rekey's own options that runs
// at once (rather than run again as it is): the revocation must happen in
// the end (I3).
func TestExhaustedRevokeTaskIsReplacedAfterItsRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	// A revocation due at once (a grace of a millisecond), so that the
	// sweep sees it due both within its task's hour of rest and after.
	if err := w.st.PutInstance(ctx, store.Registration{ID: "inst-x", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-x", RotationID: "rot-x"}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.SavePending(ctx, "inst-x", "rot-x", "cred-1", map[string]secret.String{"MYADDON_URL": secret.New("v")}); err != nil {
		t.Fatal(err)
	}
	prev, err := w.st.Promote(ctx, "inst-x", "rot-x", "cred-1", time.Millisecond, "")
	if err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: prev.InstanceID, CredentialID: prev.CredentialID},
		prev.RevokeAt, asynq.ProcessIn(0))
	if err != nil {
		t.Fatal(err)
	}
	info, err := w.q.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	// An issuer down throughout: every run fails until asynq archives it.
	srv := asynq.NewServerFromRedisClient(w.r.Client, asynq.Config{Concurrency: 1,
		Queues:            map[string]int{tasks.QueueRevoke: 1},
		RetryDelayFunc:    func(int, error, *asynq.Task) time.Duration { return 0 },
		TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel})
	if err := srv.Start(retry.Record(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return errors.New("issuer answered 503")
	}))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := w.insp.GetTaskInfo(tasks.QueueRevoke, info.ID)
		if err == nil && got.State == asynq.TaskStateArchived {
			if why := retry.Classify(got); why != retry.Exhausted {
				t.Fatalf("archived as %q, want exhausted", why)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoke task was not archived after its retries: %+v, %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Shutdown()

	// Within the hour after its last failure, the task rests.
	w.now = time.Now().Add(30 * time.Minute)
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RevokesRetried != 0 || res.RevokesEnqueued != 0 {
		t.Fatalf("Sweep within the rest = %+v, %v; want nothing done", res, err)
	}
	if got, err := w.insp.GetTaskInfo(tasks.QueueRevoke, info.ID); err != nil || got.State != asynq.TaskStateArchived {
		t.Fatalf("revoke task within the rest: %+v, %v; want it left archived", got, err)
	}
	w.now = time.Now().Add(90 * time.Minute)
	res, err = w.sweep.Sweep(ctx)
	if err != nil || res.RevokesRetried != 1 {
		t.Fatalf("Sweep = %+v, %v; want the exhausted revoke replaced", res, err)
	}
	got, err := w.insp.GetTaskInfo(tasks.QueueRevoke, info.ID)
	if err != nil || got.State != asynq.TaskStatePending || got.Retried != 0 || got.MaxRetry != tasks.RevokeMaxRetry {
		t.Fatalf("revoke task after the sweep: %+v, %v; want a fresh pending one with rekey's retries", got, err)
	}
}
