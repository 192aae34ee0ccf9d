package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An impatient customer and an operator against a fleet wave that cannot
// move: the bulk queue is paused (as the circuit breaker or an operator
// leaves it) while `rekey web` holds a wave of every instance for the
// feeder of a real `rekey worker`. A wave claims every instance up front,
// so the customer's click, the operator's API rotation and a partner's own
// rotate task enqueued through the tasks package each join the wave's
// rotation of their instance; each must still reach Heroku at once
// (shared/DESIGN.md: interactive work never waits behind a wave), whether
// the feeder had released that rotation's task into the paused queue or
// still held it. Once the queue resumes, the wave finishes the others, and
// no instance is pushed twice.
func TestAdversarialRequestsDuringAPausedWave(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(8, sandbox.Mix{})
	base := w.startWeb(nil)
	if err := w.insp.PauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
	startRekey(t, w.processEnv(), "worker")
	status, body := call(t, http.MethodPost, base+"/api/v1/rotations", `{"all":true,"reason":"incident"}`)
	if status != http.StatusAccepted {
		t.Fatalf("wave: got %d %s, want 202", status, body)
	}
	var wave struct {
		BatchID string `json:"batch_id"`
	}
	if err := json.Unmarshal([]byte(body), &wave); err != nil {
		t.Fatal(err)
	}

	// asynq knows no bulk queue before its first task, so the feeder
	// releases a first pair into the paused queue before it sees the pause;
	// the rest stay held.
	released := map[string]bool{}
	waitFor(t, time.Minute, "the feeder to release a first pair into the paused bulk queue", func() (bool, string) {
		infos, err := w.insp.ListPendingTasks(tasks.QueueBulk)
		for _, info := range infos {
			p, perr := tasks.ParseRotate(asynq.NewTask(info.Type, info.Payload))
			if perr == nil {
				released[p.InstanceID] = true
			}
		}
		return len(released) > 0, fmt.Sprintf("%d pending (%v)", len(infos), err)
	})
	time.Sleep(time.Second) // a feeder that saw the pause releases nothing more
	if held, err := pacing.Held(context.Background(), w.redis.Client); err != nil || held == 0 {
		t.Fatalf("%d rotations held (%v); want some still held behind the pause", held, err)
	}
	var fromQueue, fromHeld []string
	for _, s := range samples {
		if released[s.ID] {
			fromQueue = append(fromQueue, s.ID)
		} else {
			fromHeld = append(fromHeld, s.ID)
		}
	}
	if len(fromQueue) == 0 || len(fromHeld) < 2 {
		t.Fatalf("released %v, held %v: want a rotation of each kind to overtake", fromQueue, fromHeld)
	}
	clicked, operated, partner := fromQueue[0], fromHeld[0], fromHeld[1]

	c := w.signIn(base, clicked, advSSOSalt)
	if status, body := click(t, c, base); status != http.StatusSeeOther {
		t.Fatalf("click: got %d %s, want 303", status, body)
	}
	status, body = call(t, http.MethodPost, base+"/api/v1/rotations", `{"instance_ids":["`+operated+`"],"reason":"operator"}`)
	if status != http.StatusAccepted || !strings.Contains(body, `"joined":1`) {
		t.Fatalf("operator's rotation: got %d %s, want 202 joining the wave's", status, body)
	}
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: partner, RotationID: tasks.NewID("rot"), Reason: "partner"},
		asynq.Queue(tasks.QueueInteractive))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.queue.Enqueue(task); err != nil {
		t.Fatal(err)
	}

	overtaking := []string{clicked, operated, partner}
	waitFor(t, 30*time.Second, "the three requests to reach Heroku with the bulk queue paused", func() (bool, string) {
		var pushed []string
		for _, id := range overtaking {
			if w.sb.Fake.ConfigWrites(id) > 0 {
				pushed = append(pushed, id)
			}
		}
		return len(pushed) == len(overtaking), fmt.Sprintf("pushed %v of %v", pushed, overtaking)
	})
	for _, s := range samples {
		if !slices.Contains(overtaking, s.ID) && w.sb.Fake.ConfigWrites(s.ID) != 0 {
			t.Errorf("%s was pushed while the bulk queue was paused", s.ID)
		}
	}

	if err := w.insp.UnpauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
	b := w.waitBatch(wave.BatchID, time.Minute)
	if b.Succeeded != int64(len(samples)) || b.Failed != 0 || b.Cancelled != 0 {
		t.Errorf("wave's batch %+v: want every rotation succeeded, the overtaken ones in it", b)
	}
	for _, s := range samples {
		events, err := w.store.Events(context.Background(), s.ID, 200)
		if err != nil {
			t.Fatal(err)
		}
		promoted := 0
		for _, e := range events {
			if e.Type == store.EventPromoted {
				promoted++
			}
		}
		if n := w.sb.Fake.ConfigWrites(s.ID); n != 1 || promoted != 1 {
			t.Errorf("%s: %d config writes, %d promotions; want one rotation, pushed once", s.ID, n, promoted)
		}
	}
}

// The two ways a moved rotation could run twice or never: a bulk task the
// feeder released before the move reached it (its read came first) leaves
// the rotation to the request's queue, pushing nothing; and a moved
// rotation whose task on that queue is lost is enqueued there again by the
// reconcile sweep, and pushed once.
func TestAMovedRotationRunsOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	id := w.provision(1, sandbox.Mix{})[0].ID
	ctx := context.Background()
	if err := w.insp.PauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
	// Without a pacing client the wave's task is enqueued at once, as a
	// feeder's release is.
	p := fleet.NewProducer(w.store, w.queue)
	wave, err := p.Rotate(ctx, fleet.Request{InstanceIDs: []string{id}, Reason: "wave", Queue: tasks.QueueBulk})
	if err != nil || wave.Enqueued != 1 {
		t.Fatalf("wave: %+v, %v", wave, err)
	}
	rotation := wave.Items[0].RotationID
	click, err := p.Rotate(ctx, fleet.Request{InstanceIDs: []string{id}, Reason: "click", Queue: tasks.QueueInteractive})
	if err != nil || click.Joined != 1 {
		t.Fatalf("click: %+v, %v; want the wave's rotation joined", click, err)
	}
	if err := w.insp.DeleteTask(tasks.QueueInteractive, tasks.RotateTaskID(rotation)); err != nil {
		t.Fatalf("the moved rotation's task: %v; want it on the interactive queue", err)
	}
	if err := w.insp.UnpauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
	wk := w.startWorker(workerParams{logLevel: "info"})
	waitFor(t, 30*time.Second, "the wave's bulk task to run", func() (bool, string) {
		info, err := w.insp.GetQueueInfo(tasks.QueueBulk)
		if err != nil {
			return false, err.Error()
		}
		return info.Pending+info.Active+info.Retry == 0 && info.Processed > 0, fmt.Sprintf("%+v", info)
	})
	if n := w.sb.Fake.ConfigWrites(id); n != 0 || !strings.Contains(wk.log.String(), "rotation_moved") {
		t.Fatalf("the bulk task of a moved rotation: %d config writes, log:\n%s\nwant it to leave the rotation alone", n, wk.log.String())
	}
	if rot, err := w.store.Rotation(ctx, rotation); err != nil || rot.State != store.RotationRequested || rot.Queue != tasks.QueueInteractive {
		t.Fatalf("moved rotation after the bulk task: %+v, %v; want it requested on the interactive queue", rot, err)
	}
	w.startWorker(workerParams{sweep: true})
	waitFor(t, 30*time.Second, "the sweep to run the moved rotation", func() (bool, string) {
		rot, err := w.store.Rotation(ctx, rotation)
		return err == nil && rot.State == store.RotationPromoted, fmt.Sprintf("%+v %v", rot, err)
	})
	if n := w.sb.Fake.ConfigWrites(id); n != 1 {
		t.Errorf("%d config writes, want 1", n)
	}
	if info, err := w.insp.GetTaskInfo(tasks.QueueInteractive, tasks.RotateTaskID(rotation)); err != nil || info.Queue != tasks.QueueInteractive {
		t.Errorf("the sweep's task: %+v, %v; want it on the interactive queue", info, err)
	}
}
