package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer down for longer than a rotate task's retries (about 4.5 hours of
// back-off) leaves every scheduled rotation of those hours to the
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
				// The scheduler took the entry under a lease (at most 6 h),
				// which the task's retries (about 7 h) outlast: the entry is
				// overdue again when the sweep ends the rotation.
				due := dueEntry(t, w, "inst-1")
				if ok, err := w.st.TakeDue(ctx, due, time.Now().Add(-time.Minute), time.Now()); err != nil || !ok {
					t.Fatalf("take due entry: %v, %v", ok, err)
				}
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
				if i == store.DefaultQuarantineAfter-1 && !exhausted {
					break // quarantined: out of the due index
				}
				// Due again a retry interval later, as after any failure: not
				// at once, which would start another round of retries
				// against the issuer still down at the next minute's sweep.
				retryAt := time.Now().Add(store.RetryAfterFailure(store.DefaultRotationPeriod) - time.Minute)
				if at := dueEntry(t, w, "inst-1").At; at.Before(retryAt) {
					t.Fatalf("after failure %d the instance is due at %s, want after %s", i, at, retryAt)
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

// dueEntry is the due index's entry of instance id.
func dueEntry(t *testing.T, w *world, id string) store.Due {
	t.Helper()
	due, err := w.st.DueInstances(context.Background(), time.Now().Add(10000*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		if d.InstanceID == id {
			return d
		}
	}
	t.Fatalf("%s is not in the due index", id)
	return store.Due{}
}
