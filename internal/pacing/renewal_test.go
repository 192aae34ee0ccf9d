package pacing_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/pacing"
)

// slowLease makes the next EVALSHA/EVAL, once armed, wait for its context to
// end before it goes on: a renewal that waits for a pooled connection (the
// worker's pool shared with asynq under load) as SIGTERM comes.
type slowLease struct{ armed atomic.Bool }

func (*slowLease) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *slowLease) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := strings.ToLower(cmd.Name())
		if (name == "evalsha" || name == "eval") && h.armed.CompareAndSwap(true, false) {
			<-ctx.Done()
		}
		return next(ctx, cmd)
	}
}
func (*slowLease) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A feeder stopped (SIGTERM) while its wait's renewal is under way gives
// its lease up: the renewal fails on the ended context, and the feeder
// no longer knows it leads, yet the lease in Redis is still its own. A
// standby then takes over at once rather than after the lease runs out.
func TestFeederStoppedInARenewalResigns(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 10, 3)
	w.hold(t, 4)
	w.sharedPause(t, 10*time.Second) // the feeder waits for tokens
	p := w.params()
	p.Idle, p.QueueCheck, p.PauseCheck = 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	rdb := redis.NewClient(w.r.Client.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	hook := &slowLease{}
	rdb.AddHook(hook)
	p.Redis = rdb
	f := pacing.NewFeeder(p)
	stop := run(t, f)
	time.Sleep(300 * time.Millisecond) // it leads, and waits for the pause to end
	hook.armed.Store(true)             // its next renewal, about 2 s after the last
	time.Sleep(2500 * time.Millisecond)
	if hook.armed.Load() {
		t.Fatal("no renewal during the wait")
	}
	stop() // SIGTERM during the renewal
	owner, err := w.r.Client.Get(t.Context(), "rekey:pace:feeder").Result()
	if err != redis.Nil {
		ttl := w.r.Client.PTTL(t.Context(), "rekey:pace:feeder").Val()
		t.Errorf("after the feeder stopped, the lease is still %q's (%v, %s left): a standby cannot take over at once", owner, err, ttl)
	}
}
