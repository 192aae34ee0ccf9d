package handlers_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Another app that enqueues many rotate tasks for one instance at once (a
// retry loop, a handler that enqueues on every webhook) has each join the
// rotation in flight (I4). Each join wrote a "joined" event to the fleet's
// audit stream, which is capped: one app's loop pushed every other
// tenant's events out of it, as a customer's clicks did before their joins
// were noted once a rotation. A task's joins are noted once a rotation too.
func TestManyTasksJoiningOneRotationNoteOneJoin(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_first",
		Queue: tasks.QueueDefault}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: fmt.Sprintf("rot_loop_%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.run(task); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	events, err := g.st.FleetEvents(ctx, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	joined := 0
	for _, e := range events {
		if e.Type == store.EventJoined {
			joined++
		}
	}
	if joined > 1 {
		t.Errorf("the fleet's audit stream holds %d \"joined\" events of %d tasks joining one rotation, want 1", joined, n)
	}
}
