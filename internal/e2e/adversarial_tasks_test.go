package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// Another app, through the public tasks package, enqueues a revoke task for
// an instance's current credential, the one its apps use. rekey refuses it
// (I1). Later a rotation supersedes that credential, and its revocation,
// under the same task id, must still happen after the grace (I3), whatever
// options the stray task carried:
//   - asynq's defaults: the refused task is dropped, not archived, so it
//     holds no task id;
//   - a retention of its own: dropped, it is kept as completed, and the
//     sweep replaces it;
//   - a deadline long past and no retries: asynq archives it without
//     running it, and the sweep replaces it with a task of rekey's own
//     options rather than run it again with the same past deadline.
//
// None is taken for the issuer's refusal and set aside as dead.
func TestAdversarialStrayRevokeTaskForTheCurrentCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(3, sandbox.Mix{})
	strays := map[string][]asynq.Option{
		samples[0].ID: nil,
		samples[1].ID: {asynq.Retention(time.Hour)},
		samples[2].ID: {asynq.Deadline(time.Unix(1, 0)), asynq.MaxRetry(0)},
	}
	current := map[string]string{}
	for id, opts := range strays {
		current[id] = w.current(id)
		// The options at the enqueue, as an app's own client may pass
		// them: the constructor refuses a deadline already past.
		task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: id, CredentialID: current[id]}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.queue.EnqueueContext(ctx, task, opts...); err != nil {
			t.Fatal(err)
		}
	}
	w.startWorker(workerParams{sweep: true, retryDelay: fastRetry})
	// Each stray task has run (or expired) and left its state behind.
	for id := range strays {
		waitFor(t, 20*time.Second, "stray revoke task of "+id, func() (bool, string) {
			info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(id, current[id]))
			if err != nil {
				return true, "" // dropped
			}
			done := info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived
			return done, fmt.Sprintf("state %s, last error %q", info.State, info.LastErr)
		})
		if !w.sb.Demo.Valid(current[id]) {
			t.Fatalf("%s: the stray task revoked the current credential (I1)", id)
		}
	}
	ids := make([]string, 0, len(strays))
	for id := range strays {
		ids = append(ids, id)
	}
	w.waitBatch(w.rotate(ids...).BatchID, 30*time.Second)
	w.waitRevoked(30 * time.Second)
	for id := range strays {
		if w.sb.Demo.Valid(current[id]) {
			t.Errorf("%s: superseded credential %s still valid past its grace (I3)", id, current[id])
		}
		if dead, err := w.store.IsRevocationDead(ctx, id, current[id]); err != nil || dead {
			t.Errorf("%s: revocation set aside as dead (%v): the stray task's refusal is not the issuer's", id, err)
		}
	}
}
