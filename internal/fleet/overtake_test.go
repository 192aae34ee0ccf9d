package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A wave claims every instance up front, so a customer's or an operator's
// request of one of them joins the wave's rotation. While that rotation is
// only held, the request moves it to its own queue and enqueues its task
// there: it does not wait for the wave's pace, nor for a paused bulk queue.
// The feeder then drops the held id without a token. A second wave only
// joins, and a rotation already under way is not moved. Cancelling the
// wave ends only the rotation nobody else waits for.
func TestARequestOvertakesTheWaveItJoins(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 5)
	p := fleet.NewProducer(f.st, pacing.NewClient(f.queue, f.r.Client, nil))
	wave, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "wave", Queue: tasks.QueueBulk, Grace: time.Hour})
	if err != nil || wave.Enqueued != 5 {
		t.Fatalf("wave: %+v, %v", wave, err)
	}
	rotationOf := map[string]string{}
	for _, it := range wave.Items {
		rotationOf[it.InstanceID] = it.RotationID
	}
	// The third instance's rotation is under way: a worker minted for it.
	config := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:p4ssw0rd-minted@h/db")}
	if err := f.st.SavePending(ctx, ids[2], rotationOf[ids[2]], "cred-minted", config); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(f.r.Client)
	src := &fleet.HeldTasks{Store: f.st}

	cases := []struct {
		name      string
		id        string
		queue     string
		wantMoved bool
	}{
		{"a customer's click", ids[0], tasks.QueueInteractive, true},
		{"an operator's list", ids[1], tasks.QueueDefault, true},
		{"a rotation under way", ids[2], tasks.QueueInteractive, false},
		{"a second wave", ids[3], tasks.QueueBulk, false},
	}
	for _, c := range cases {
		res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: []string{c.id}, Reason: c.name, Queue: c.queue})
		if err != nil || res.Joined != 1 || res.Enqueued != 0 {
			t.Fatalf("%s: %+v, %v; want the wave's rotation joined", c.name, res, err)
		}
		rot, err := f.st.Rotation(ctx, rotationOf[c.id])
		if err != nil {
			t.Fatal(err)
		}
		task, err := insp.GetTaskInfo(c.queue, tasks.RotateTaskID(rotationOf[c.id]))
		held, herr := src.RotateTask(ctx, rotationOf[c.id])
		if c.wantMoved {
			if rot.Queue != c.queue || err != nil || task.State != asynq.TaskStatePending {
				t.Errorf("%s: rotation on %q, its task on %s: %+v, %v; want it moved there, pending", c.name, rot.Queue, c.queue, task, err)
				continue
			}
			pl, perr := tasks.ParseRotate(asynq.NewTask(task.Type, task.Payload))
			if perr != nil || pl.BatchID != wave.BatchID || pl.InstanceID != c.id || time.Duration(pl.Grace) != time.Hour {
				t.Errorf("%s: moved task %+v, %v; want the wave's rotation as claimed", c.name, pl, perr)
			}
			if herr != nil || held != nil {
				t.Errorf("%s: feeder's task %v, %v; want the held id dropped with no task", c.name, held, herr)
			}
			continue
		}
		if rot.Queue != tasks.QueueBulk || err == nil {
			t.Errorf("%s: rotation on %q, task %+v; want it left on the bulk queue with no task of %s", c.name, rot.Queue, task, c.queue)
		}
	}
	// The batch counts the moved rotations as the wave's; they finish in it.
	b, err := f.st.Batch(ctx, wave.BatchID)
	if err != nil || b.Enqueued != 5 || b.InFlight != 5 {
		t.Errorf("wave's batch %+v, %v; want its 5 rotations in flight", b, err)
	}
	// Cancelling the wave removes only the rotation nobody else asked for:
	// the moved ones are the click's and the operator's rotations too, and
	// their tasks stay; the one under way finishes; the second wave, not
	// cancelled, waits for the one it joined, which stays held.
	n, err := fleet.Cancel(ctx, f.st, insp, wave.BatchID)
	if err != nil || n != 1 {
		t.Errorf("cancel removed %d, %v; want 1 (the one nobody else asked for)", n, err)
	}
	for i, want := range []string{store.RotationRequested, store.RotationRequested, store.RotationMinted,
		store.RotationRequested, store.RotationCancelled} {
		name := "the wave's own"
		if i < len(cases) {
			name = cases[i].name
		}
		if rot, err := f.st.Rotation(ctx, rotationOf[ids[i]]); err != nil || rot.State != want {
			t.Errorf("%s after the cancel: %q, %v; want %q", name, rot.State, err, want)
		}
	}
	// A feeder that has not seen the wave live in the last seconds reads
	// the cancel.
	src = &fleet.HeldTasks{Store: f.st}
	if got, err := src.RotateTask(ctx, rotationOf[ids[3]]); err != nil || got == nil {
		t.Errorf("feeder's task of the second wave's joined rotation after the cancel: %v, %v; want it released", got, err)
	}
	// The feeder's look ran nothing: a click before the released task runs
	// still moves the rotation ahead of the wave.
	click, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids[3:4], Reason: "click", Queue: tasks.QueueInteractive})
	if err != nil || click.Joined != 1 {
		t.Fatalf("click after the feeder's look: %+v, %v", click, err)
	}
	if rot, err := f.st.Rotation(ctx, rotationOf[ids[3]]); err != nil || rot.Queue != tasks.QueueInteractive {
		t.Errorf("rotation the click joined after the feeder's look is on %q (%v), want moved to interactive", rot.Queue, err)
	}
	for _, c := range cases[:2] {
		if task, err := insp.GetTaskInfo(c.queue, tasks.RotateTaskID(rotationOf[c.id])); err != nil || task.State != asynq.TaskStatePending {
			t.Errorf("%s: moved task after the cancel: %+v, %v; want it still pending", c.name, task, err)
		}
	}
}

// A wave's rotation that a customer's click joined while its bulk task ran
// is the click's too: cancelling the wave does not end it
// (store.CancelBatch). Should its task then be lost and the reconcile
// sweep hold the rotation again, the feeder, which records a cancelled
// batch's held rotations cancelled, must release it rather than drop it:
// dropped, it would wait in flight for a task nobody makes, held again and
// dropped at every sweep, the instance never rotated.
func TestTheFeederReleasesAKeptRotationOfACancelledWave(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 1)
	pc := pacing.NewClient(f.queue, f.r.Client, nil)
	p := fleet.NewProducer(f.st, pc)
	wave, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "wave", Queue: tasks.QueueBulk})
	if err != nil || wave.Enqueued != 1 {
		t.Fatalf("wave: %+v, %v", wave, err)
	}
	rot := wave.Items[0].RotationID
	// The feeder released it and its bulk task's claim resumed it.
	if err := pacing.Unhold(ctx, f.r.Client, rot); err != nil {
		t.Fatal(err)
	}
	task := store.RotationRequest{InstanceID: ids[0], RotationID: rot, BatchID: wave.BatchID, Queue: tasks.QueueBulk}
	if c, err := f.st.Claim(ctx, task); err != nil || c.Status != store.Resumed {
		t.Fatalf("bulk task's claim: %+v, %v", c, err)
	}
	click, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "click", Queue: tasks.QueueInteractive})
	if err != nil || click.Joined != 1 {
		t.Fatalf("click: %+v, %v; want the wave's rotation joined", click, err)
	}
	if _, err := fleet.Cancel(ctx, f.st, asynq.NewInspectorFromRedisClient(f.r.Client), wave.BatchID); err != nil {
		t.Fatal(err)
	}
	// The task is lost; the sweep holds the rotation again.
	if err := pc.Hold(ctx, rot); err != nil {
		t.Fatal(err)
	}
	src := &fleet.HeldTasks{Store: f.st}
	got, err := src.RotateTask(ctx, rot)
	if err != nil || got == nil {
		t.Fatalf("held again after the cancel: %v, %v; want its task released", got, err)
	}
	if pl, err := tasks.ParseRotate(got); err != nil || pl.RotationID != rot {
		t.Errorf("released task: %+v, %v; want the rotation's", pl, err)
	}
	if r, err := f.st.Rotation(ctx, rot); err != nil || r.State != store.RotationRequested {
		t.Errorf("rotation the click joined: %+v, %v; want it still requested", r, err)
	}
}
