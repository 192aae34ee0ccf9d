package reconcile_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer down for longer than a rotate task's retries (about 7 hours of
// asynq's back-off) leaves every scheduled rotation of those hours to the
// sweep, which ends it as retries_exhausted. Those failures were transient,
// every instance's alike: they must not count towards the instance's
// quarantine, which would stop the scheduled rotations of the whole fleet,
// nothing wrong with any instance, until an operator cleared them. A task
// refused for good (archived by hand here) still counts.
func TestScheduledRotationsWhoseRetriesRanOutQuarantineNoInstance(t *testing.T) {
	t.Parallel()
	for name, exhausted := range map[string]bool{"retries_exhausted": true, "refused": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			w := newWorld(t)
			w.register(t, "inst-1")
			for i := range store.DefaultQuarantineAfter {
				rot := fmt.Sprintf("rot_sched_%d", i)
				if _, err := w.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: rot,
					Reason: store.ReasonScheduled, Queue: tasks.QueueBulk}); err != nil {
					t.Fatal(err)
				}
				task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: rot,
					Reason: store.ReasonScheduled}, asynq.Queue(tasks.QueueBulk))
				if err != nil {
					t.Fatal(err)
				}
				opts := []asynq.Option{}
				if exhausted {
					// Archived with its retries used up: asynq's count says
					// exhausted (retry.Classify), as after hours of 5xx.
					opts = append(opts, asynq.MaxRetry(0))
				}
				info, err := w.q.Enqueue(task, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.insp.ArchiveTask(tasks.QueueBulk, info.ID); err != nil {
					t.Fatal(err)
				}
				if res, err := w.sweep.Sweep(ctx); err != nil || res.RotationsFailed != 1 {
					t.Fatalf("sweep %d = %+v, %v; want the rotation ended", i, res, err)
				}
			}
			in, err := w.st.Instance(ctx, "inst-1")
			if err != nil {
				t.Fatal(err)
			}
			if in.Quarantined() == exhausted {
				t.Errorf("after %d scheduled rotations ended %s: quarantined %v (%s), want %v",
					store.DefaultQuarantineAfter, name, in.Quarantined(), in.QuarantineReason, !exhausted)
			}
		})
	}
}
