package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestALostRotationWithAGraceBelowTheFloorIsEnqueuedAgain: a rotation
// whose record keeps a grace below the floor (an earlier worker's claim
// from another app's payload, Grace: 90 meant as seconds but sent as
// "1m30s"), its task lost, gets a new task from the sweep all the same,
// carrying that grace, which the worker sets aside for the instance's own.
// Built with tasks.NewRotateTask, which refuses such a grace, it would
// never get one: the rotation would stay in flight, and every later
// request for the instance would join it (I4).
func TestALostRotationWithAGraceBelowTheFloorIsEnqueuedAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.register(t, "inst-short")
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-short", RotationID: "rot-short",
		Queue: tasks.QueueDefault, Grace: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RotationsEnqueued != 1 {
		t.Fatalf("Sweep = %+v, %v; want the lost rotation enqueued", res, err)
	}
	info, err := w.insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID("rot-short"))
	if err != nil {
		t.Fatalf("lost rotation not enqueued: %v", err)
	}
	if p, err := tasks.ParseRotate(asynq.NewTask(info.Type, info.Payload)); err != nil || time.Duration(p.Grace) != 90*time.Second {
		t.Errorf("rebuilt task's grace = %s, %v; want the record's 1m30s", time.Duration(p.Grace), err)
	}
}
