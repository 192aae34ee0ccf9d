package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/tasks"
)

// An operator's "Run now" on a revoke task scheduled hours ahead (asynq's
// Inspector.RunTask, asynqmon's button, the asynq CLI) runs the handler
// before the revoke time: it refuses to revoke (I2) and the task goes back
// to asynq's retry set for the time left. It comes back at the revoke time,
// not up to a tenth of the time left after it (a day's grace: 2.4 hours),
// which the sweep leaves alone, the task waiting for the revocation's own
// time: the credential would stay valid that long past its grace.
func TestARevokeTaskRunByHandHoursEarlyComesBackAtItsRevokeTime(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.register(t, "inst-e")
	r := w.promoted(t, "inst-e", 24*time.Hour)
	w.startWorker(t, issuer.NewDemo(), nil)
	w.enqueueRevoke(t, r, r.RevokeAt)
	if got := w.revokeTaskState(t, r); got != asynq.TaskStateScheduled {
		t.Fatalf("revoke task is %s, want scheduled for its revoke time", got)
	}
	if err := w.insp.RunTask(tasks.QueueRevoke, tasks.RevokeTaskID(r.InstanceID, r.CredentialID)); err != nil {
		t.Fatal(err)
	}
	info := w.waitRevokeTask(t, r, func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateRetry })
	if c, err := w.st.Credential(context.Background(), r.InstanceID, r.CredentialID); err != nil || c.Revoked() {
		t.Fatalf("the credential is %s (%v) a day before its revoke time, want previous (I2)", c.State, err)
	}
	// asynq keeps the retry time in whole seconds, stamped on the worker's
	// clock, which is Redis's here.
	if info.NextProcessAt.Before(r.RevokeAt.Add(-time.Second)) || info.NextProcessAt.After(r.RevokeAt.Add(3*time.Second)) {
		t.Errorf("the early run's task comes back at %s, %s after the revoke time %s; want at the revoke time",
			info.NextProcessAt, info.NextProcessAt.Sub(r.RevokeAt), r.RevokeAt)
	}
}
