package fleet_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Another app, through the tasks package, queues a rotate task that names
// a running batch of rekey's. Cancelling the batch leaves that task alone:
// rekey's producers record a rotation before its task exists, and claiming
// the other app's task here would start its rotation inside the batch and
// count it there, as cancelled, while the batch's own rotations run.
func TestCancelLeavesAnotherAppsTaskOutOfTheBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 2)
	p := fleet.NewProducer(f.st, f.queue)
	own, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids[:1], Reason: "wave", Queue: tasks.QueueDefault})
	if err != nil || own.Enqueued != 1 {
		t.Fatalf("batch: %+v, %v", own, err)
	}
	foreign, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: ids[1], RotationID: "rot_other_app", BatchID: own.BatchID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.queue.EnqueueContext(ctx, foreign, asynq.Queue(tasks.QueueDefault)); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(f.r.Client)
	n, err := fleet.Cancel(ctx, f.st, insp, own.BatchID)
	if err != nil || n != 1 {
		t.Fatalf("cancel removed %d, %v; want 1, the batch's own", n, err)
	}
	if _, err := f.st.Rotation(ctx, "rot_other_app"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the other app's rotation after the cancel: %v; want none started by the cancel", err)
	}
	if info, err := insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID("rot_other_app")); err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("the other app's task after the cancel: %+v, %v; want it left pending", info, err)
	}
	b, err := f.st.Batch(ctx, own.BatchID)
	if err != nil || b.Cancelled != 1 || b.Enqueued != 1 || b.Total != 1 {
		t.Errorf("batch after the cancel: %+v, %v; want its one rotation cancelled and nothing else", b, err)
	}
}
