package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
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

// Another app puts rotate tasks on the revoke queue with its own asynq
// client, past the tasks package's constructors (an older version of it,
// asynq.Queue given to Enqueue), and an older worker claimed a rotation on
// that queue whose task was lost since. A worker moves such a task to the
// default queue before it claims anything, so that no rotation runs on the
// revoke queue, holding a slot the revocations due wait for; the rotation
// runs there, and the sweep gives the older worker's rotation its task on
// the default queue too. Both instances rotate.
func TestAdversarialRotateTaskOnTheRevokeQueueMovesToTheDefaultQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(2, sandbox.Mix{})
	byApp, old := samples[0].ID, samples[1].ID
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: byApp, Reason: "on the revoke queue"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := w.queue.EnqueueContext(ctx, task, asynq.Queue(tasks.QueueRevoke))
	if err != nil {
		t.Fatal(err)
	}
	p, err := tasks.ParseRotate(task)
	if err != nil {
		t.Fatal(err)
	}
	oldRot := tasks.NewID("rot")
	if _, err := w.store.Claim(ctx, store.RotationRequest{InstanceID: old, RotationID: oldRot,
		Queue: tasks.QueueRevoke}); err != nil {
		t.Fatal(err)
	}
	w.startWorker(workerParams{sweep: true})
	for id, rot := range map[string]string{byApp: p.RotationID, old: oldRot} {
		waitFor(t, 30*time.Second, "rotation of "+id, func() (bool, string) {
			r, err := w.store.Rotation(ctx, rot)
			return err == nil && r.State == store.RotationPromoted, fmt.Sprintf("%+v, %v", r, err)
		})
		// asynq marks a task completed a moment after its handler, which
		// promoted the rotation, returned.
		waitFor(t, 10*time.Second, "rotation "+rot+"'s task completed on the default queue (not run elsewhere)", func() (bool, string) {
			got, err := w.insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID(rot))
			return err == nil && got.State == asynq.TaskStateCompleted, fmt.Sprintf("%+v, %v", got, err)
		})
	}
	waitFor(t, 10*time.Second, "the app's task on the revoke queue completed once moved", func() (bool, string) {
		moved, err := w.insp.GetTaskInfo(tasks.QueueRevoke, info.ID)
		return err == nil && moved.State == asynq.TaskStateCompleted, fmt.Sprintf("%+v, %v", moved, err)
	})
	if r, err := w.store.Rotation(ctx, p.RotationID); err != nil || r.Queue != tasks.QueueDefault || r.Reason != "on the revoke queue" {
		t.Errorf("the app's rotation: queue %q, reason %q (%v); want the default queue and the task's reason", r.Queue, r.Reason, err)
	}
}

// A rotate task asked for more than 30 days ago, whose rotation rekey no
// longer knows and that ran before, is an archived task run again by hand
// (asynq keeps archived tasks for 90 days, rekey a finished rotation's
// record for 30): an operator clicking "run" on an old task in asynqmon.
// Run, it started a new rotation of the instance at once, on the bulk
// queue outside the feeder's pace, restarting the customer's app; and
// under a rotation id the issuer may have minted for before, whose
// credential is revoked by then. The worker archives it instead, saying to
// rotate afresh, and the instance keeps its credential. A task as old
// whose rotation is still recorded (in flight for weeks, its archived task
// run again by the sweep) still runs, and so does one as old that never
// ran: another app's rotation enqueued weeks ahead (asynq.ProcessIn given
// to Enqueue), its requested_at the day it was built.
func TestAdversarialStaleRotateTaskRunAgainByHandDoesNotRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(3, sandbox.Mix{})
	stale, known, ahead := samples[0].ID, samples[1].ID, samples[2].ID
	before := w.current(stale)
	long := time.Now().Add(-31 * 24 * time.Hour)
	staleTask, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: stale, Reason: "weeks ago", RequestedAt: long})
	if err != nil {
		t.Fatal(err)
	}
	staleP, _ := tasks.ParseRotate(staleTask)
	if _, err := w.queue.EnqueueContext(ctx, staleTask, asynq.Queue(tasks.QueueBulk)); err != nil {
		t.Fatal(err)
	}
	// Weeks ago its run failed for good and asynq archived it.
	failing := asynq.NewServerFromRedisClient(w.redis.Client, asynq.Config{Concurrency: 1,
		Queues: map[string]int{tasks.QueueBulk: 1}, LogLevel: asynq.FatalLevel})
	if err := failing.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("refused weeks ago: %w", asynq.SkipRetry)
	})); err != nil {
		t.Fatal(err)
	}
	w.waitTask(tasks.QueueBulk, tasks.RotateTaskID(staleP.RotationID), 30*time.Second)
	waitFor(t, 30*time.Second, "the stale task archived", func() (bool, string) {
		info, err := w.insp.GetTaskInfo(tasks.QueueBulk, tasks.RotateTaskID(staleP.RotationID))
		return err == nil && info.State == asynq.TaskStateArchived, fmt.Sprintf("%+v, %v", info, err)
	})
	failing.Shutdown()
	if err := w.insp.RunTask(tasks.QueueBulk, tasks.RotateTaskID(staleP.RotationID)); err != nil {
		t.Fatal(err)
	}

	knownRot := tasks.NewID("rot")
	if _, err := w.store.Claim(ctx, store.RotationRequest{InstanceID: known, RotationID: knownRot,
		Queue: tasks.QueueDefault}); err != nil {
		t.Fatal(err)
	}
	knownTask, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: known, RotationID: knownRot, RequestedAt: long})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.queue.EnqueueContext(ctx, knownTask); err != nil {
		t.Fatal(err)
	}
	aheadTask, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: ahead, Reason: "scheduled weeks ahead", RequestedAt: long})
	if err != nil {
		t.Fatal(err)
	}
	aheadP, _ := tasks.ParseRotate(aheadTask)
	if _, err := w.queue.EnqueueContext(ctx, aheadTask); err != nil {
		t.Fatal(err)
	}
	w.startWorker(workerParams{})
	info := w.waitTask(tasks.QueueBulk, tasks.RotateTaskID(staleP.RotationID), 30*time.Second)
	waitFor(t, 30*time.Second, "the stale task archived again", func() (bool, string) {
		info, err = w.insp.GetTaskInfo(tasks.QueueBulk, tasks.RotateTaskID(staleP.RotationID))
		return err == nil && info.State == asynq.TaskStateArchived && strings.Contains(info.LastErr, "stale_task"),
			fmt.Sprintf("%+v, %v", info, err)
	})
	if !strings.Contains(info.LastErr, "new rotate task") {
		t.Errorf("the stale task's last error %q does not say to enqueue a new rotate task", info.LastErr)
	}
	if got := w.current(stale); got != before {
		t.Errorf("the stale task rotated %s: its credential %s is now %s", stale, before, got)
	}
	if r, err := w.store.Rotation(ctx, staleP.RotationID); err == nil {
		t.Errorf("the stale task started rotation %s: %+v", staleP.RotationID, r)
	}
	for what, id := range map[string]string{"the known rotation": knownRot, "the rotation enqueued weeks ahead": aheadP.RotationID} {
		waitFor(t, 30*time.Second, what, func() (bool, string) {
			r, err := w.store.Rotation(ctx, id)
			return err == nil && r.State == store.RotationPromoted, fmt.Sprintf("%+v, %v", r, err)
		})
	}
}

// Another app puts revoke tasks on the rotation queues with its own asynq
// client, past the tasks package's constructor (an older version of it,
// asynq.Queue given to Enqueue): there the sweeps, `rekey revocations
// expedite` and the dashboard's "revoke now" never find them, and one whose
// revoke time is hours away waits in that queue's retry set. A worker
// schedules such a revocation on the revoke queue at the credential's
// revoke time, with rekey's options, and ends the task found elsewhere:
//   - far: revoke time two hours away, rekey's own task lost; a task on the
//     revoke queue waits for that time, the credential still valid;
//   - kept: revoke time two hours away, rekey's own task there; it stays as
//     it was, scheduled for that time;
//   - near: revoke time seconds away, rekey's own task lost; the credential
//     is revoked at its time, not before (I2), and not lost (I3).
//
// Each stray task runs once and ends; none waits or retries where it is.
func TestAdversarialRevokeTaskOnARotationQueueMovesToTheRevokeQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(3, sandbox.Mix{})
	far, kept, near := samples[0], samples[1], samples[2]
	first := w.startWorker(workerParams{})
	producer := fleet.NewProducer(w.store, w.queue, fleet.WithMinGrace(time.Second))
	for id, grace := range map[string]time.Duration{far.ID: 2 * time.Hour, kept.ID: 2 * time.Hour, near.ID: 20 * time.Second} {
		res, err := producer.Rotate(ctx, fleet.Request{InstanceIDs: []string{id}, Reason: "e2e",
			Queue: tasks.QueueDefault, Grace: grace})
		if err != nil {
			t.Fatal(err)
		}
		if b := w.waitBatch(res.BatchID, 30*time.Second); b.Succeeded != 1 {
			t.Fatalf("%s: batch %+v", id, b)
		}
	}
	first.stop()
	strays := map[string]string{far.ID: tasks.QueueDefault, kept.ID: tasks.QueueInteractive, near.ID: tasks.QueueBulk}
	revokeAt := map[string]time.Time{}
	for _, s := range samples {
		c, err := w.store.Credential(ctx, s.ID, s.Provisioned)
		if err != nil || c.State != store.CredentialPrevious {
			t.Fatalf("%s: old credential %+v, %v; want it previous", s.ID, c, err)
		}
		revokeAt[s.ID] = c.RevokeAt
		if s.ID != kept.ID {
			if err := w.insp.DeleteTask(tasks.QueueRevoke, tasks.RevokeTaskID(s.ID, s.Provisioned)); err != nil {
				t.Fatalf("%s: delete rekey's revoke task: %v", s.ID, err)
			}
		}
		task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: s.ID, CredentialID: s.Provisioned}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.queue.EnqueueContext(ctx, task, asynq.Queue(strays[s.ID])); err != nil {
			t.Fatal(err)
		}
	}
	second := w.startWorker(workerParams{sweep: true})
	for _, s := range samples {
		id := tasks.RevokeTaskID(s.ID, s.Provisioned)
		waitFor(t, 20*time.Second, "stray revoke task of "+s.ID, func() (bool, string) {
			info, err := w.insp.GetTaskInfo(strays[s.ID], id)
			if err != nil {
				return true, "" // dropped
			}
			return info.State == asynq.TaskStateCompleted, fmt.Sprintf("state %s, retried %d, last error %q",
				info.State, info.Retried, info.LastErr)
		})
	}
	for _, s := range []sandbox.Sample{far, kept} {
		info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(s.ID, s.Provisioned))
		if err != nil || info.State != asynq.TaskStateScheduled || info.NextProcessAt.Before(revokeAt[s.ID]) {
			t.Errorf("%s: revoke task on the revoke queue %+v (%v); want one scheduled for its revoke time %s",
				s.ID, info, err, revokeAt[s.ID])
			continue
		}
		if info.MaxRetry != tasks.RevokeMaxRetry || info.Timeout != tasks.RevokeTimeout ||
			!info.Deadline.IsZero() || info.Retention != 0 {
			t.Errorf("%s: revoke task with options not rekey's: %+v", s.ID, info)
		}
		if !w.sb.Demo.Valid(s.Provisioned) {
			t.Errorf("%s: old credential revoked two hours before its revoke time (I2)", s.ID)
		}
	}
	waitFor(t, 40*time.Second, "revocation of "+near.ID, func() (bool, string) {
		_, ok := w.sb.Demo.RevokedAt(near.Provisioned)
		return ok, "still valid"
	})
	if at, _ := w.sb.Demo.RevokedAt(near.Provisioned); at.Before(revokeAt[near.ID]) {
		t.Errorf("%s: revoked at %s, before its revoke time %s (I2)", near.ID, at, revokeAt[near.ID])
	}
	if n := strings.Count(second.log.String(), "revocation_moved_to_revoke_queue"); n != 3 {
		t.Errorf("%d revocation_moved_to_revoke_queue warnings, want one for each stray task", n)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}
