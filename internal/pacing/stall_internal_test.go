package pacing

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/tasks"
)

// stallAtRelease runs, once armed, stall before the first command that
// touches a paid mark: the feeder's release begins, and the feeder stalls
// (a GC pause, a starved CPU) after its last look at its lease.
type stallAtRelease struct {
	armed atomic.Bool
	stall func(ctx context.Context)
}

func (*stallAtRelease) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *stallAtRelease) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		for _, a := range cmd.Args() {
			if s, ok := a.(string); ok && strings.HasPrefix(s, paidKey) && h.armed.CompareAndSwap(true, false) {
				h.stall(ctx)
				break
			}
		}
		return next(ctx, cmd)
	}
}
func (*stallAtRelease) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// bulkTasks builds held rotations' tasks as fleet.HeldTasks does, kept by
// asynq only until they finish, and none for a rotation that finished.
type bulkTasks struct{ finished sync.Map }

func (b *bulkTasks) RotateTask(_ context.Context, id string) (*asynq.Task, error) {
	if _, ok := b.finished.Load(id); ok {
		return nil, nil
	}
	return tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst", RotationID: id},
		asynq.Queue(tasks.QueueBulk), asynq.Retention(0))
}

// A feeder that stalls after its last look at its lease, for longer than
// the lease is left, releases nothing once it wakes: the standby that took
// the lease over released the same rotation meanwhile, and its push may
// have run. Released again, a finished rotation would run a second task,
// with a paid mark that no push spends. The stall is played by the stalled
// feeder's clock, moved on by the lease's length, and the lease's expiry
// by deleting it.
func TestFeederThatStalledPastItsLeaseReleasesNothing(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := t.Context()
	lim, err := ratelimit.New(r.Client, ratelimit.Params{PerHour: 50 * 3600, Burst: 4, Reserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lim.Close() })
	q := asynq.NewClientFromRedisClient(r.Client)
	insp := asynq.NewInspectorFromRedisClient(r.Client)
	src := &bulkTasks{}
	const id = "rot_stalled"
	if err := NewClient(q, r.Client, nil).Hold(ctx, id); err != nil {
		t.Fatal(err)
	}

	hook := &stallAtRelease{}
	stalling := hooked(t, r, hook)
	a := NewFeeder(FeederParams{Redis: stalling, Tasks: src, Client: q, Queues: insp, Budget: lim})
	b := NewFeeder(FeederParams{Redis: r.Client, Tasks: src, Client: q, Queues: insp, Budget: lim})
	var stalled atomic.Int64 // how far the stall moved a's clock
	a.now = func() time.Time { return time.Now().Add(time.Duration(stalled.Load())) }
	hook.stall = func(ctx context.Context) {
		stalled.Store(int64(leaseTime))
		// The lease runs out while the feeder stalls; the standby takes it
		// over and releases the rotation, whose task runs and finishes
		// (asynq deletes it) before the stalled feeder goes on.
		if err := r.Client.Del(ctx, leaseKey).Err(); err != nil {
			t.Error(err)
		}
		b.step(ctx)
		if got := b.Stats().Released; got != 1 {
			t.Errorf("the standby that took the lease over released %d, want 1", got)
		}
		if !NewPaid(r.Client).Take(ctx, id) {
			t.Error("the standby's release left no paid mark for the push")
		}
		if err := insp.DeleteTask(Queue, tasks.RotateTaskID(id)); err != nil {
			t.Error(err)
		}
		src.finished.Store(id, true)
	}
	hook.armed.Store(true)

	a.step(ctx)

	if hook.armed.Load() {
		t.Fatal("the feeder released without touching a paid mark: the stall never came")
	}
	if st := a.Stats(); st.Released != 0 {
		t.Errorf("the feeder that stalled past its lease released %d after the standby took over (stats %+v)", st.Released, st)
	}
	if info, err := insp.GetTaskInfo(Queue, tasks.RotateTaskID(id)); err == nil {
		t.Errorf("the finished rotation has a task again (%s): it runs a second time", info.State)
	} else if !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Error(err)
	}
	if n := r.Client.Exists(ctx, paidKey+id).Val(); n != 0 {
		t.Errorf("a paid mark is left for the finished rotation: no push spends its token")
	}
	if owner := r.Client.Get(ctx, leaseKey).Val(); owner != b.id {
		t.Errorf("the lease is %q's, want the standby's %q", owner, b.id)
	}
}
