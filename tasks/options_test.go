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
