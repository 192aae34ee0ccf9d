// Package ratelimit spends one budget of Heroku API calls across every rekey
// process, so that together they make at most Params.PerHour calls, slow down
// when Heroku says the account runs low, and pause when it answers 429.
//
// The budget is a GCRA in Redis (github.com/go-redis/redis_rate), one key per
// scope (the account, or each add-on instance). Interactive calls and
// background calls share the same rate on the same key; background calls may
// not take the last Params.Reserve tokens of the burst, so an interactive call
// goes through at once even in the middle of a full-speed background wave.
//
// Each process has one Limiter. Its callers queue locally; one dispatcher
// goroutine per busy key asks Redis for as many tokens as it expects to get
// and hands them out, interactive callers first, then in arrival order. Redis
// therefore sees about one call per token, plus one per refusal per process,
// however many goroutines wait.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter is one process's share of the Heroku call budget. Create one per
// process with New and share it between all goroutines; it is safe for
// concurrent use. Close stops it.
type Limiter struct {
	rdb      redis.UniversalClient
	gcra     *redis_rate.Limiter
	p        Params
	limits   [numClasses]redis_rate.Limit
	interval time.Duration

	ctx    context.Context // bounds every Redis call; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup // dispatchers

	mu      sync.Mutex
	closed  bool
	buckets map[string]*bucket    // by scopeKeys.rate, only while callers wait
	memos   map[string]bucketMemo // by scopeKeys.rate, once nobody waits
	streaks map[string]bool       // hold keys whose last answer seen here was a 429

	stats counters
}

// The Heroku client's Limiter.
var _ interface {
	Wait(ctx context.Context, addonID string) error
	Observe(addonID string, remaining int, status int)
} = (*Limiter)(nil)

// New returns a Limiter spending the budget p describes in rdb. It fails with
// a sentence when p is invalid.
func New(rdb redis.UniversalClient, p Params) (*Limiter, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Limiter{
		rdb: rdb, gcra: redis_rate.NewLimiter(rdb), p: p,
		interval: time.Hour / time.Duration(p.PerHour),
		ctx:      ctx, cancel: cancel,
		buckets: make(map[string]*bucket), memos: make(map[string]bucketMemo), streaks: make(map[string]bool),
	}
	for _, c := range dispatchOrder {
		l.limits[c] = redis_rate.Limit{Rate: p.PerHour, Period: time.Hour, Burst: l.burst(c)}
	}
	return l, nil
}

// Wait blocks until the budget grants one Heroku call for addonID, in the
// class ClassFrom(ctx) gives. It returns ctx's error when ctx ends first, and
// a *DelayError as soon as it expects the grant to take longer than
// Params.MaxWait. With ScopeAccount addonID is ignored. Safe for concurrent
// use: however many goroutines wait, one dispatcher per budget talks to Redis.
func (l *Limiter) Wait(ctx context.Context, addonID string) error {
	keys, err := keysFor(l.p.Scope, addonID)
	if err != nil {
		return err
	}
	class, start := ClassFrom(ctx), time.Now()
	if err := ctx.Err(); err != nil {
		l.stats.record(class, err, 0)
		return err
	}
	if usePrepaid(ctx) {
		l.stats.record(class, nil, 0)
		l.stats.prepaid.Add(1)
		return nil
	}
	w, err := l.enqueue(keys, class, 1, start)
	if w != nil {
		err = l.await(ctx, w)
	}
	l.stats.record(class, err, time.Since(start))
	return err
}

// WaitN is Wait for n calls at once: it blocks until the budget grants n
// tokens together, taken in one request to Redis. The pacing feeder takes
// its tokens in pairs this way, which halves what each costs Redis. n must
// be at least 1 and at most the class's burst. A WithPrepaid context is not
// consulted.
func (l *Limiter) WaitN(ctx context.Context, addonID string, n int) error {
	keys, err := keysFor(l.p.Scope, addonID)
	if err != nil {
		return err
	}
	class := ClassFrom(ctx)
	if n < 1 || n > l.burst(class) {
		return fmt.Errorf("ratelimit: WaitN of %d tokens, want 1 to %d", n, l.burst(class))
	}
	start := time.Now()
	if err := ctx.Err(); err != nil {
		l.stats.record(class, err, 0)
		return err
	}
	w, err := l.enqueue(keys, class, n, start)
	if w != nil {
		err = l.await(ctx, w)
	}
	l.stats.record(class, err, time.Since(start))
	return err
}

// await blocks until w is finished, ctx ends or MaxWait passes.
func (l *Limiter) await(ctx context.Context, w *waiter) error {
	timer := time.NewTimer(l.p.MaxWait)
	defer timer.Stop()
	select {
	case err := <-w.done:
		return err
	case <-timer.C:
		l.leave(w, nil)
		return <-w.done
	case <-ctx.Done():
		l.leave(w, ctx.Err())
		if err := <-w.done; err == nil {
			l.passOn(w.keys, w.need) // the tokens came as ctx ended: someone else may use them
		}
		return ctx.Err()
	}
}

// Close stops the dispatchers; waiting callers get ErrClosed. Observe does
// nothing afterwards. Safe to call more than once.
func (l *Limiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	return nil
}

// Params returns the Limiter's parameters, defaults filled in; New accepts
// them again unchanged.
func (l *Limiter) Params() Params { return l.p }

// Interval is the time between two tokens at the full rate: an hour divided
// by PerHour.
func (l *Limiter) Interval() time.Duration { return l.interval }

// PerSecond is the budget's rate in calls per second.
func (l *Limiter) PerSecond() float64 { return float64(l.p.PerHour) / 3600 }

// Estimate is how long the budget takes to grant calls background tokens,
// starting full and spent by nobody else: a lower bound, for planning.
func (l *Limiter) Estimate(calls int) time.Duration {
	return time.Duration(max(0, calls-l.burst(Background))) * l.interval
}

// Burst is how many tokens class c may take at once from a full budget: the
// most one WaitN may ask for.
func (l *Limiter) Burst(c Class) int { return l.burst(c) }

// burst is how many tokens class c may take at once from a full budget.
func (l *Limiter) burst(c Class) int {
	if c == Interactive {
		return l.p.Burst
	}
	return l.p.Burst - l.p.reserve()
}
