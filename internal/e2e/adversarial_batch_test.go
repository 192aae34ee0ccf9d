package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// Another app that holds a batch id of rekey's (POST /api/v1/rotations
// answers it) enqueues rotate tasks of its own through tasks/, naming that
// batch, for other instances. Their rotations run, but they are not the
// batch's: while the batch's own rotation waits, the batch counts none of
// theirs and is not done, so nobody waiting on it carries on too early.
func TestAdversarialForeignTasksDoNotFinishABatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(3, sandbox.Mix{})
	// The batch's own rotation waits in its paused queue.
	if err := w.insp.PauseQueue(tasks.QueueDefault); err != nil {
		t.Fatal(err)
	}
	w.startWorker(workerParams{retryDelay: fastRetry})
	res := w.rotate(samples[0].ID)

	var ids []string
	for _, s := range samples[1:] {
		task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: s.ID, BatchID: res.BatchID, Reason: "other app"},
			asynq.Queue(tasks.QueueInteractive))
		if err != nil {
			t.Fatal(err)
		}
		info, err := w.queue.Enqueue(task)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	for i, id := range ids {
		if info := w.waitTask(tasks.QueueInteractive, id, 30*time.Second); info.State != asynq.TaskStateCompleted {
			t.Fatalf("other app's task %s: %s (%s); want completed", id, info.State, info.LastErr)
		}
		if n := w.sb.Fake.ConfigWrites(samples[i+1].ID); n != 1 {
			t.Errorf("%s: %d config writes; want the other app's rotation pushed once", samples[i+1].ID, n)
		}
	}
	b, err := w.store.Batch(ctx, res.BatchID)
	if err != nil || b.Done || b.InFlight != 1 || b.Succeeded != 0 || b.Failed != 0 {
		t.Fatalf("batch while its own rotation waits: %+v, %v; want it in flight, none of the other app's counted", b, err)
	}

	if err := w.insp.UnpauseQueue(tasks.QueueDefault); err != nil {
		t.Fatal(err)
	}
	if b := w.waitBatch(res.BatchID, 30*time.Second); b.Succeeded != 1 || b.Failed != 0 {
		t.Errorf("batch once its own rotation ran: %+v; want its one rotation succeeded", b)
	}
}
