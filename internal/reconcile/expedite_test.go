package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A revocation expedited after its task was scheduled for the old revoke
// time is run by the sweep, should the expedite's own run of the task have
// failed (rekey revocations expedite interrupted, Redis unreachable for a
// moment): otherwise the credential, due now, would stay valid for the
// rest of its old grace. A held revocation's task, which waits for its
// re-check past the revoke time by design, is left to wait.
func TestSweepRunsAnExpeditedRevocationHeldForItsOldTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	schedule := func(r *store.Revocation, at time.Time) { w.enqueueRevoke(t, r, at) }
	state := func(r *store.Revocation) asynq.TaskState { return w.revokeTaskState(t, r) }

	expedited := w.rotated(t, "inst-e")
	schedule(expedited, expedited.RevokeAt)
	if _, err := w.st.ExpediteRevocation(ctx, expedited.InstanceID, expedited.CredentialID, "operator"); err != nil {
		t.Fatal(err)
	}
	held := w.rotated(t, "inst-h")
	recheck := held.RevokeAt.Add(5 * time.Minute)
	schedule(held, recheck)
	if err := w.st.SaveHold(ctx, store.Hold{InstanceID: held.InstanceID, CredentialID: held.CredentialID,
		RevokeAt: held.RevokeAt, HeldAt: held.RevokeAt, CapAt: held.RevokeAt.Add(24 * time.Hour),
		LastUsedAt: held.RevokeAt, CheckedAt: held.RevokeAt, NextCheckAt: recheck}, store.EventRevocationHeld, "in use"); err != nil {
		t.Fatal(err)
	}

	// The sweep runs after both revoke times, past its slack.
	w.now = held.RevokeAt.Add(3 * time.Minute)
	res, err := w.sweep.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.RevokesExpedited != 1 {
		t.Errorf("sweep result %+v, want one expedited revocation run", res)
	}
	if s := state(expedited); s != asynq.TaskStatePending {
		t.Errorf("the expedited revocation's task is %s after the sweep, want pending (run now)", s)
	}
	if s := state(held); s != asynq.TaskStateScheduled {
		t.Errorf("the held revocation's task is %s after the sweep, want scheduled for its re-check", s)
	}
}

// TryRevokeNow, the dashboard's "revoke now", takes one look at the
// expedited revocation's task: a task scheduled for the old time runs now, a missing
// one is enqueued, a pending one is left to its worker, and one that
// asynq kept as completed (a task its retention kept) is replaced, since
// asynq runs no completed task again.
func TestTryRevokeNowByTaskState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	p := reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: w.insp, Logger: zerolog.Nop()}
	state := func(r *store.Revocation) asynq.TaskState { return w.revokeTaskState(t, r) }
	enqueue := func(r *store.Revocation, opts ...asynq.Option) { w.enqueueRevoke(t, r, r.RevokeAt, opts...) }

	scheduled, missing, pending, completed := w.rotated(t, "inst-s"), w.rotated(t, "inst-m"), w.rotated(t, "inst-p"), w.rotated(t, "inst-c")
	// A worker runs completed's task to the end, asynq keeping it an hour.
	enqueue(completed, asynq.ProcessIn(0), asynq.Retention(time.Hour))
	srv := asynq.NewServerFromRedisClient(w.r.Client, asynq.Config{Queues: map[string]int{tasks.QueueRevoke: 1},
		Logger: logging.Asynq{L: zerolog.Nop()}})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeRevoke, func(context.Context, *asynq.Task) error { return nil })
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); state(completed) != asynq.TaskStateCompleted; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the task is %s, not completed", state(completed))
		}
	}
	srv.Shutdown()
	enqueue(scheduled)
	enqueue(pending, asynq.ProcessIn(0))

	for _, tc := range []struct {
		r    *store.Revocation
		want reconcile.RevokeTask
	}{
		{scheduled, reconcile.RevokeTaskRun},
		{missing, reconcile.RevokeTaskEnqueued},
		{pending, reconcile.RevokeTaskPending},
		{completed, reconcile.RevokeTaskEnqueued},
	} {
		rev, err := w.st.ExpediteRevocation(ctx, tc.r.InstanceID, tc.r.CredentialID, "customer")
		if err != nil {
			t.Fatal(err)
		}
		got, err := reconcile.TryRevokeNow(ctx, p, rev)
		if err != nil || got != tc.want {
			t.Errorf("%s: TryRevokeNow = %q, %v; want %q", tc.r.InstanceID, got, err, tc.want)
		}
		// A task enqueued for now is asynq's in the next whole second
		// (tasks.NewRevokeTask): pending, or scheduled within 2 s.
		info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(tc.r.InstanceID, tc.r.CredentialID))
		if err != nil || info.State != asynq.TaskStatePending &&
			(info.State != asynq.TaskStateScheduled || time.Until(info.NextProcessAt) > 2*time.Second) {
			t.Errorf("%s: revoke task %+v (%v), want it to run now", tc.r.InstanceID, info, err)
		}
	}
}

// enqueueRevoke enqueues r's revoke task for at, as a worker does.
func (w *world) enqueueRevoke(t *testing.T, r *store.Revocation, at time.Time, opts ...asynq.Option) {
	t.Helper()
	task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: r.InstanceID, CredentialID: r.CredentialID}, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.q.Enqueue(task, opts...); err != nil {
		t.Fatal(err)
	}
}

// revokeTaskState is the state of r's revoke task.
func (w *world) revokeTaskState(t *testing.T, r *store.Revocation) asynq.TaskState {
	t.Helper()
	info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(r.InstanceID, r.CredentialID))
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}
