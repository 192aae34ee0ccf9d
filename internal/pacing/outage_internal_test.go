package pacing

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

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

// stallAfterLook runs, once armed, stall after the reply to the feeder's
// look at the wave's outcomes (its MGET): the feeder stalls (a GC pause, a
// starved CPU) between its look and what it does with it.
type stallAfterLook struct {
	armed atomic.Bool
	stall func(ctx context.Context)
}

func (*stallAfterLook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *stallAfterLook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "mget" && h.armed.CompareAndSwap(true, false) {
			h.stall(ctx)
		}
		return err
	}
}
func (*stallAfterLook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A feeder that stalls past its lease after a look that found the wave
// failing does not mark the outage once it wakes: the standby that took
// over may have seen the outage end meanwhile, and a mark set then would
// stay for a later run that rotates, which would bring forward rotations
// failing for reasons of their own.
func TestAFeederThatStalledPastItsLeaseDoesNotMarkTheOutage(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := t.Context()
	hook := &stallAfterLook{}
	stalling := hooked(t, r, hook)
	params := func(rdb redis.UniversalClient) FeederParams {
		return FeederParams{Redis: rdb, Tasks: &bulkTasks{}, Client: asynq.NewClientFromRedisClient(r.Client),
			Queues: asynq.NewInspectorFromRedisClient(r.Client)}
	}
	outcomes := NewOutcomes(r.Client, nil)
	for range FailingAfter {
		outcomes.Record(ctx, false, false)
	}
	a, b := NewFeeder(params(stalling)), NewFeeder(params(r.Client))
	var aLater, bLater atomic.Int64
	a.now = func() time.Time { return time.Now().Add(time.Duration(aLater.Load())) }
	b.now = func() time.Time { return time.Now().Add(time.Duration(bLater.Load())) }
	hook.stall = func(ctx context.Context) {
		aLater.Store(int64(leaseTime))
		// The lease runs out while a stalls; b takes it over, sees the
		// outage, and then its end, and brings its rotations forward.
		if err := r.Client.Del(ctx, leaseKey).Err(); err != nil {
			t.Error(err)
		}
		b.step(ctx)
		if r.Client.Exists(ctx, outageKey).Val() != 1 {
			t.Error("the standby that took over did not mark the outage")
		}
		outcomes.Record(ctx, true, false)
		bLater.Store(int64(FailingCheck))
		b.step(ctx)
		b.step(ctx)
		if r.Client.Exists(ctx, outageKey).Val() != 0 {
			t.Error("the standby that took over did not take the outage's mark when a run rotated")
		}
	}
	hook.armed.Store(true)

	a.step(ctx)

	if hook.armed.Load() {
		t.Fatal("the feeder did not look at the wave's outcomes: the stall never came")
	}
	if r.Client.Exists(ctx, outageKey).Val() != 0 {
		t.Error("the feeder that stalled past its lease marked an outage that had ended under the feeder leading")
	}
}
