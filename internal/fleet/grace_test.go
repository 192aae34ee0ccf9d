package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestAGraceUnderTasksFloorRunsUnderALowerFloor: tasks.NewRotateTask
// refuses a grace below tasks.MinGrace, the default floor, but a
// deployment may lower its floor (REKEY_MIN_GRACE=1m), and the producer
// checks a request's grace against that one. Its tasks, enqueued at once
// or built by the pacing feeder from a held rotation's record, carry the
// grace asked for: built with tasks' floor, the enqueue would fail after
// the claim, and the held rotation would be dropped as unusable.
func TestAGraceUnderTasksFloorRunsUnderALowerFloor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 3)
	const asked = 5 * time.Minute
	p := fleet.NewProducer(f.st, pacing.NewClient(f.queue, f.r.Client, nil), fleet.WithMinGrace(time.Minute))
	res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids[:2], Reason: "test", Grace: asked})
	if err != nil || res.Enqueued != 2 {
		t.Fatalf("Rotate with a %s grace under a 1m floor = %+v, %v; want both enqueued", asked, res, err)
	}
	insp := asynq.NewInspectorFromRedisClient(f.r.Client)
	info, err := insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID(res.Items[0].RotationID))
	if err != nil {
		t.Fatal(err)
	}
	if pl, err := tasks.ParseRotate(asynq.NewTask(info.Type, info.Payload)); err != nil || time.Duration(pl.Grace) != asked {
		t.Errorf("enqueued task's grace = %s, %v; want %s", time.Duration(pl.Grace), err, asked)
	}
	bulk, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids[2:], Reason: "test", Queue: tasks.QueueBulk, Grace: asked})
	if err != nil || len(bulk.Items) != 1 {
		t.Fatalf("bulk Rotate = %+v, %v", bulk, err)
	}
	task, err := (&fleet.HeldTasks{Store: f.st}).RotateTask(ctx, bulk.Items[0].RotationID)
	if err != nil || task == nil {
		t.Fatalf("task of the held rotation: %v, %v", task, err)
	}
	if pl, err := tasks.ParseRotate(task); err != nil || time.Duration(pl.Grace) != asked {
		t.Errorf("held rotation's task grace = %s, %v; want %s", time.Duration(pl.Grace), err, asked)
	}
}

// TestAHeldRotationWithAGraceBelowAnyFloorIsReleased: a bulk rotation
// whose record keeps a grace below any floor (an earlier worker's claim
// from another app's payload) is still built into a task when the feeder
// releases it, carrying that grace, which the worker sets aside for the
// instance's own: refused, the rotation would be dropped as unusable and
// stay in flight.
func TestAHeldRotationWithAGraceBelowAnyFloorIsReleased(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 1)
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: ids[0], RotationID: "rot_short",
		Queue: tasks.QueueBulk, Grace: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	task, err := (&fleet.HeldTasks{Store: f.st}).RotateTask(ctx, "rot_short")
	if err != nil || task == nil {
		t.Fatalf("task of the held rotation: %v, %v; want one", task, err)
	}
	if pl, err := tasks.ParseRotate(task); err != nil || time.Duration(pl.Grace) != 90*time.Second {
		t.Errorf("task's grace = %s, %v; want the record's 1m30s", time.Duration(pl.Grace), err)
	}
}
