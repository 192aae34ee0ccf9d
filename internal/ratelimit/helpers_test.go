package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// perSecond is Params.PerHour for n calls per second.
func perSecond(n int) int { return n * 3600 }

// commandCounter counts the commands a client sends to Redis.
type commandCounter struct{ n atomic.Int64 }

var _ redis.Hook = (*commandCounter)(nil)

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// process is one simulated rekey process: its own Redis client, counted, and
// its own Limiter on the shared database.
type process struct {
	*ratelimit.Limiter
	commands *commandCounter
}

func newProcess(tb testing.TB, r *redistest.Redis, p ratelimit.Params) process {
	tb.Helper()
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		tb.Fatal(err)
	}
	client := redis.NewClient(opt)
	counter := &commandCounter{}
	client.AddHook(counter)
	tb.Cleanup(func() { _ = client.Close() })
	l, err := ratelimit.New(client, p)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return process{Limiter: l, commands: counter}
}

// hammer runs n goroutines per process that call Wait in ctx's class until ctx
// ends. It returns how many tokens were granted, and when the first and the
// last one were.
func hammer(ctx context.Context, procs []process, n int) (granted int64, first, last time.Time) {
	var (
		count atomic.Int64
		mu    sync.Mutex
		wg    sync.WaitGroup
	)
	for _, p := range procs {
		for range n {
			wg.Go(func() {
				for p.Wait(ctx, "addon") == nil {
					count.Add(1)
					mu.Lock()
					last = time.Now()
					if first.IsZero() {
						first = last
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return count.Load(), first, last
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdLeft is the pause left on the budget of addon, zero when none.
func holdLeft(t *testing.T, rdb *redis.Client, s ratelimit.Scope, addon string) time.Duration {
	t.Helper()
	ttl, err := rdb.PTTL(context.Background(), ratelimit.HoldKey(s, addon)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return max(ttl, 0)
}

// waitResult is the outcome of one Wait call.
type waitResult struct {
	err  error
	took time.Duration
}

// waitAsync calls Wait in a goroutine and delivers its outcome.
func waitAsync(ctx context.Context, l *ratelimit.Limiter, addon string) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		start := time.Now()
		err := l.Wait(ctx, addon)
		ch <- waitResult{err, time.Since(start)}
	}()
	return ch
}

// receive returns the outcome on ch, failing t when none comes within d.
func receive(t *testing.T, ch <-chan waitResult, d time.Duration) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("Wait did not return within %s", d)
		return waitResult{}
	}
}

// delayOf returns err's RetryIn, failing t when err is no *DelayError.
func delayOf(t *testing.T, err error) time.Duration {
	t.Helper()
	d, ok := ratelimit.IsDelay(err)
	var de *ratelimit.DelayError
	if !ok || !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DelayError", err)
	}
	return d
}
