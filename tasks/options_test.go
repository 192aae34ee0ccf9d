package tasks_test

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/tasks"
)

// rekey's workers serve the queues of tasks.Queues and nothing else, and
// run no group aggregator: a task on another queue ("Interactive", a typo)
// or in a group would wait in Redis for ever, no rotation claimed, nothing
// in rekey_queue_tasks or the sweeps to say so. The constructors refuse
// such options, so the app that asked learns it at once.
func TestTaskConstructorsRefuseOptionsNoWorkerWouldRun(t *testing.T) {
	t.Parallel()
	rotate := tasks.RotatePayload{InstanceID: "inst-options", RotationID: "rot_options"}
	revoke := tasks.RevokePayload{InstanceID: "inst-options", CredentialID: "cred_options"}
	for name, opt := range map[string]asynq.Option{
		"a queue no worker serves": asynq.Queue("Interactive"),
		"another app's queue":      asynq.Queue("critical"),
		"a group (no aggregator)":  asynq.Group("incident-42"),
	} {
		if _, err := tasks.NewRotateTask(rotate, opt); err == nil {
			t.Errorf("NewRotateTask with %s (%v): no error", name, opt)
		}
		if _, err := tasks.NewRevokeTask(revoke, time.Now(), opt); err == nil {
			t.Errorf("NewRevokeTask with %s (%v): no error", name, opt)
		}
	}
	for q := range tasks.Queues() {
		if _, err := tasks.NewRotateTask(rotate, asynq.Queue(q)); err != nil {
			t.Errorf("NewRotateTask on rekey's queue %q: %v", q, err)
		}
		if _, err := tasks.NewRevokeTask(revoke, time.Now(), asynq.Queue(q)); err != nil {
			t.Errorf("NewRevokeTask on rekey's queue %q: %v", q, err)
		}
	}
}

// asynq fails a task whose deadline has passed before any handler runs it,
// and again at every retry until its retries are used up: a rotate task
// so built is never claimed, so no sweep, no batch and no metric of
// rekey's sees the rotation that was asked for, and the app that enqueued
// it was told nothing. The constructors refuse a deadline at or before the
// task's first run, as they refuse a queue no worker serves.
func TestTaskConstructorsRefuseADeadlineBeforeTheFirstRun(t *testing.T) {
	t.Parallel()
	rotate := tasks.RotatePayload{InstanceID: "inst-deadline", RotationID: "rot_deadline"}
	revoke := tasks.RevokePayload{InstanceID: "inst-deadline", CredentialID: "cred_deadline"}
	now := time.Now()
	for name, opts := range map[string][]asynq.Option{
		"a deadline in the past":             {asynq.Deadline(now.Add(-time.Minute))},
		"a deadline before ProcessIn's time": {asynq.Deadline(now.Add(time.Hour)), asynq.ProcessIn(2 * time.Hour)},
		"a deadline before ProcessAt's time": {asynq.ProcessAt(now.Add(3 * time.Hour)), asynq.Deadline(now.Add(time.Hour))},
	} {
		if _, err := tasks.NewRotateTask(rotate, opts...); err == nil {
			t.Errorf("NewRotateTask with %s: no error", name)
		}
	}
	if _, err := tasks.NewRevokeTask(revoke, now.Add(2*time.Hour), asynq.Deadline(now.Add(time.Hour))); err == nil {
		t.Error("NewRevokeTask with a deadline before its revoke time: no error")
	}
	if _, err := tasks.NewRotateTask(rotate, asynq.Deadline(now.Add(time.Hour))); err != nil {
		t.Errorf("NewRotateTask with a deadline an hour ahead: %v", err)
	}
}
