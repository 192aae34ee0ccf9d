package tasks_test

import (
	"strings"
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
		if _, err := tasks.NewRotateTask(rotate, asynq.Queue(q)); err != nil && q != tasks.QueueRevoke {
			t.Errorf("NewRotateTask on rekey's queue %q: %v", q, err)
		}
	}
	if _, err := tasks.NewRevokeTask(revoke, time.Now(), asynq.Queue(tasks.QueueRevoke)); err != nil {
		t.Errorf("NewRevokeTask on rekey's revoke queue: %v", err)
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

// asynq keeps a task's deadline in whole seconds, cutting the fraction off
// (and its scheduled time too), so a deadline a fraction of a second after
// the first run, within that second, is stored at or before it: asynq fails
// the task before any worker runs it, as it does one whose deadline is at
// its first run. The constructors refuse it as they refuse that one.
func TestTaskConstructorsRefuseADeadlineWithinTheFirstRunsSecond(t *testing.T) {
	c, insp := newClient(t)
	at := time.Now().Truncate(time.Second).Add(time.Hour)
	cred := tasks.NewID("cred")
	revoke, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-deadline-second", CredentialID: cred}, at,
		asynq.Deadline(at.Add(500*time.Millisecond)))
	if err == nil {
		if _, err := c.Enqueue(revoke); err != nil {
			t.Fatal(err)
		}
		info, err := insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID("inst-deadline-second", cred))
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("NewRevokeTask to run at %s with a deadline 500ms later: no error, and asynq keeps its deadline at %s, "+
			"not after its run at %s", at.UTC().Format(time.RFC3339Nano), info.Deadline.UTC().Format(time.RFC3339Nano),
			info.NextProcessAt.UTC().Format(time.RFC3339Nano))
	}
	if _, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-deadline-second", RotationID: tasks.NewID("rot")},
		asynq.ProcessAt(at.Add(200*time.Millisecond)), asynq.Deadline(at.Add(800*time.Millisecond))); err == nil {
		t.Error("NewRotateTask to run at .2s with a deadline at .8s of the same second: no error")
	}
	if _, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-deadline-second", CredentialID: cred}, at,
		asynq.Deadline(at.Add(time.Second))); err != nil {
		t.Errorf("NewRevokeTask with a deadline a second after its run: %v", err)
	}
}

// asynq keeps a task's timeout in whole seconds and, for a task without a
// deadline, ends each run that long after it starts: a negative timeout (an
// asynq.Timeout(time.Until(cutoff)) whose cutoff has passed) ends every run
// before it starts, and asynq fails the task before any worker runs it, at
// every retry, until it archives it, as it does a task whose deadline has
// passed. The rotation is never claimed, so nothing of rekey's sees it. The
// constructors refuse such a timeout as they refuse that deadline.
func TestTaskConstructorsRefuseANegativeTimeout(t *testing.T) {
	c, insp := newClient(t)
	rot := tasks.NewID("rot")
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-timeout", RotationID: rot},
		asynq.Timeout(-time.Minute))
	if err == nil {
		if _, err := c.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		info, err := insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID(rot))
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("NewRotateTask with a timeout of -1m: no error, and asynq keeps the timeout %s with deadline %v: "+
			"every run ends before it starts", info.Timeout, info.Deadline)
	}
	if _, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-timeout", CredentialID: tasks.NewID("cred")},
		time.Now(), asynq.Timeout(-time.Second)); err == nil {
		t.Error("NewRevokeTask with a timeout of -1s: no error")
	}
	for _, d := range []time.Duration{time.Minute, tasks.RotateTimeout} {
		if _, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-timeout"}, asynq.Timeout(d)); err != nil {
			t.Errorf("NewRotateTask with a timeout of %s: %v", d, err)
		}
	}
}

// The revoke queue is for revocations: rekey's workers serve it beside the
// default queue, weighted for revocations due now, and a revoke task
// elsewhere is one rekey's sweeps and "revoke now" never find (they look
// for it on the revoke queue). Another app's rotations put there would wait
// in line before the revocations, each holding a slot for minutes, and
// revocations would run past their revoke time. The constructors refuse a
// rotate task on the revoke queue and a revoke task on any other queue,
// naming the queues each belongs on.
func TestTaskConstructorsKeepTheRevokeQueueForRevocations(t *testing.T) {
	t.Parallel()
	rotate := tasks.RotatePayload{InstanceID: "inst-revoke-queue", RotationID: "rot_revoke_queue"}
	revoke := tasks.RevokePayload{InstanceID: "inst-revoke-queue", CredentialID: "cred_revoke_queue"}
	_, err := tasks.NewRotateTask(rotate, asynq.Queue(tasks.QueueRevoke))
	if err == nil {
		t.Error("NewRotateTask on the revoke queue: no error")
	} else {
		for _, want := range []string{`"revoke"`, tasks.QueueInteractive, tasks.QueueDefault, tasks.QueueBulk} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("NewRotateTask on the revoke queue: error %q does not name %s", err, want)
			}
		}
	}
	if _, err := tasks.NewRotateTaskWithFloor(rotate, 0, asynq.Queue("revoke")); err == nil {
		t.Error(`NewRotateTaskWithFloor on queue "revoke": no error`)
	}
	for _, q := range []string{tasks.QueueInteractive, tasks.QueueDefault, tasks.QueueBulk} {
		_, err := tasks.NewRevokeTask(revoke, time.Now(), asynq.Queue(q))
		if err == nil {
			t.Errorf("NewRevokeTask on queue %q: no error", q)
			continue
		}
		if !strings.Contains(err.Error(), `"revoke"`) {
			t.Errorf("NewRevokeTask on queue %q: error %q does not name the revoke queue", q, err)
		}
	}
	if _, err := tasks.NewRevokeTask(revoke, time.Now(), asynq.Queue(tasks.QueueRevoke)); err != nil {
		t.Errorf("NewRevokeTask on the revoke queue: %v", err)
	}
}

// A rotation scheduled ahead is asked for at its first run, not when its
// task was built: a worker refuses a task asked for more than 30 days
// before it runs (an archived one run again by hand), and a rotation
// another app schedules 60 days ahead must still run.
func TestRotateTaskScheduledAheadIsAskedForAtItsFirstRun(t *testing.T) {
	ahead := 60 * 24 * time.Hour
	at := time.Now().Add(ahead)
	given := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name string
		p    tasks.RotatePayload
		opts []asynq.Option
		want time.Time
	}{
		{"ProcessIn", tasks.RotatePayload{InstanceID: "inst-1"}, []asynq.Option{asynq.ProcessIn(ahead)}, at},
		{"ProcessAt", tasks.RotatePayload{InstanceID: "inst-1"}, []asynq.Option{asynq.ProcessAt(at)}, at},
		{"now", tasks.RotatePayload{InstanceID: "inst-1"}, nil, time.Now()},
		{"ProcessAt in the past", tasks.RotatePayload{InstanceID: "inst-1"}, []asynq.Option{asynq.ProcessAt(time.Now().Add(-time.Hour))}, time.Now()},
		{"given", tasks.RotatePayload{InstanceID: "inst-1", RequestedAt: given}, []asynq.Option{asynq.ProcessIn(ahead)}, given},
	} {
		task, err := tasks.NewRotateTask(c.p, c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p, err := tasks.ParseRotate(task)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d := p.RequestedAt.Sub(c.want); d < -5*time.Second || d > 5*time.Second {
			t.Errorf("%s: requested_at %s, want %s", c.name, p.RequestedAt, c.want)
		}
	}
}
