package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// archiveRevoke enqueues prev's revoke task and archives it with its
// retries left, as asynq does with a task refused permanently.
func (w *world) archiveRevoke(t *testing.T, prev *store.Revocation) {
	t.Helper()
	task, _ := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: prev.InstanceID, CredentialID: prev.CredentialID}, prev.RevokeAt)
	info, err := w.q.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.insp.ArchiveTask(tasks.QueueRevoke, info.ID); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedRevocationIsSetAsideAndRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	prev := w.rotated(t, "inst-d")
	w.archiveRevoke(t, prev)
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RevocationsDead != 1 || res.RevokesRetried != 0 {
		t.Fatalf("Sweep = %+v, %v; want the refused revocation set aside, not run again", res, err)
	}
	dead, _ := w.st.DeadRevocations(ctx, 0, 10)
	if len(dead) != 1 || dead[0].ID() != "inst-d/cred-0" || dead[0].Reason != store.DeadRefused || dead[0].RevokeAt.IsZero() {
		t.Fatalf("dead-letter set = %+v; want inst-d/cred-0, refused, with its revoke time", dead)
	}
	if n, _ := w.st.PendingRevocations(ctx); n != 0 {
		t.Errorf("%d revocations still due; a dead one must leave the due index", n)
	}
	if ev, _ := w.st.Events(ctx, "inst-d", 1); len(ev) != 1 || ev[0].Type != store.EventRevocationDead || ev[0].CredentialID != "cred-0" {
		t.Errorf("last event %+v; want %s for cred-0", ev, store.EventRevocationDead)
	}
	if res, _ := w.sweep.Sweep(ctx); res != (reconcile.Result{}) {
		t.Errorf("second sweep did %+v; a dead revocation waits for an operator", res)
	}

	p := reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: w.insp, Logger: zerolog.Nop()}
	if _, err := reconcile.RetryDead(ctx, p, []string{"inst-d/cred-0", "inst-d/nope"}, false, "test"); !errors.Is(err, reconcile.ErrNotDead) {
		t.Fatalf("RetryDead with an unknown id: %v; want ErrNotDead and nothing moved", err)
	}
	if n, _ := w.st.CountDeadRevocations(ctx); n != 1 {
		t.Fatalf("a refused RetryDead moved entries: %d left, want 1", n)
	}
	moved, err := reconcile.RetryDead(ctx, p, nil, true, "test")
	if err != nil || len(moved) != 1 {
		t.Fatalf("RetryDead(all) = %v, %v; want one moved", moved, err)
	}
	if n, _ := w.st.CountDeadRevocations(ctx); n != 0 {
		t.Errorf("%d dead after retry, want 0", n)
	}
	info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID("inst-d", "cred-0"))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("revoke task after retry: %+v, %v; want pending", info, err)
	}
}

// Case 7 of issue 8: entries at the head of the due index whose tasks stay
// put must not hide an entry behind them whose task was lost.
func TestSweepPagesPastEntriesThatStay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	const stuck = 1100
	for i := range stuck {
		prev := w.rotated(t, fmt.Sprintf("stuck-%04d", i))
		task, _ := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: prev.InstanceID, CredentialID: prev.CredentialID}, prev.RevokeAt)
		if _, err := w.q.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	lost := w.rotated(t, "zz-lost") // revoke time at or after every stuck one; no task

	// 500 entries a sweep: the lost task is found on the third sweep, as
	// the cursor carries each sweep on from where the last stopped.
	small := reconcile.New(reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: w.insp,
		Logger: zerolog.Nop(), PerSweep: 500, Now: func() time.Time { return w.now }})
	for i, want := range []int{0, 0, 1, 0} {
		res, err := small.Sweep(ctx)
		if err != nil || res.RevokesEnqueued != want {
			t.Fatalf("sweep %d = %+v, %v; want %d revoke enqueued", i+1, res, err, want)
		}
	}
	if err := w.insp.DeleteTask(tasks.QueueRevoke, tasks.RevokeTaskID(lost.InstanceID, lost.CredentialID)); err != nil {
		t.Fatal(err)
	}
	// With the default share, one sweep walks the whole index.
	if res, err := w.sweep.Sweep(ctx); err != nil || res.RevokesEnqueued != 1 {
		t.Fatalf("default sweep = %+v, %v; want the lost revoke enqueued", res, err)
	}
}
