package pacing

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/tasks"
)

// backedOff is asynq's inspector whose retry set holds one rotation's
// task, waiting out asynq's back-off after an outage.
type backedOff struct {
	*asynq.Inspector
	info *asynq.TaskInfo
}

func (q *backedOff) ListRetryTasks(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
	return []*asynq.TaskInfo{q.info}, nil
}

// A feeder killed (or losing its lease) right after the look that found
// the outage over leaves its mark in Redis: the standby that leads next
// brings the outage's rotations forward.
func TestAFeederKilledAfterItsLookLeavesTheOutageToTheNextLeader(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := t.Context()
	const id = "rot_backed_off"
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst", RotationID: id})
	if err != nil {
		t.Fatal(err)
	}
	q := &backedOff{Inspector: asynq.NewInspectorFromRedisClient(r.Client), info: &asynq.TaskInfo{
		ID: tasks.RotateTaskID(id), Queue: Queue, Type: task.Type(), Payload: task.Payload(),
		State: asynq.TaskStateRetry, Retried: retry.FastRetries + 1, NextProcessAt: time.Now().Add(time.Hour),
	}}
	params := func() FeederParams {
		return FeederParams{Redis: r.Client, Tasks: &bulkTasks{}, Client: asynq.NewClientFromRedisClient(r.Client), Queues: q}
	}
	outcomes := NewOutcomes(r.Client, nil)
	for range FailingAfter {
		outcomes.Record(ctx, false, false)
	}
	a := NewFeeder(params())
	var later time.Duration
	a.now = func() time.Time { return time.Now().Add(later) }
	a.step(ctx)
	if r.Client.Exists(ctx, outageKey).Val() != 1 {
		t.Fatal("the look that found the wave failing did not mark the outage")
	}
	outcomes.Record(ctx, true, false)
	later = FailingCheck
	a.step(ctx) // the look that finds a run rotated; then a is killed

	if err := r.Client.Del(ctx, leaseKey).Err(); err != nil {
		t.Fatal(err)
	}
	b := NewFeeder(params())
	b.step(ctx)
	b.step(ctx)
	if r.Client.Exists(ctx, forwardedKey+id).Val() != 1 {
		t.Errorf("the rotation in asynq's back-off was not brought forward by the feeder leading after the one " +
			"that saw the outage end was killed")
	}
}
