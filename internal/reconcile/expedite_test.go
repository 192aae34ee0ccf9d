package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

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
	schedule := func(r *store.Revocation, at time.Time) {
		t.Helper()
		task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: r.InstanceID, CredentialID: r.CredentialID}, at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.q.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	state := func(r *store.Revocation) asynq.TaskState {
		t.Helper()
		info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(r.InstanceID, r.CredentialID))
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}

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
