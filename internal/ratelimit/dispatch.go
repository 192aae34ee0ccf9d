package ratelimit

import (
	"fmt"
	"time"
)

// plan is what a dispatcher does next: ask Redis for n tokens of class, ask
// Redis about the hold, or sleep.
type plan struct {
	class   Class
	n       int
	refresh bool
	sleep   time.Duration
}

// dispatch serves b's waiters until none is left or the Limiter closes. It is
// the only goroutine that asks Redis for b's tokens, so the number of waiters
// does not change the number of Redis calls.
func (l *Limiter) dispatch(b *bucket) {
	defer l.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		sleep, ok := l.step(b)
		if !ok {
			return
		}
		if sleep > 0 && !l.sleep(b, timer, sleep) {
			l.shut(b)
			return
		}
	}
}

// sleep waits for d, a nudge or Close; it reports false on Close.
func (l *Limiter) sleep(b *bucket, timer *time.Timer, d time.Duration) bool {
	timer.Reset(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-b.kick:
	case <-l.ctx.Done():
		return false
	}
	return true
}

// step makes one move for b. It reports false, after forgetting b, when
// nobody waits any more.
func (l *Limiter) step(b *bucket) (time.Duration, bool) {
	l.mu.Lock()
	if b.idle() {
		l.remember(b, time.Now())
		delete(l.buckets, b.keys.rate)
		l.mu.Unlock()
		return 0, false
	}
	p := l.plan(b, time.Now())
	l.mu.Unlock()
	var err error
	switch {
	case p.refresh:
		err = l.refreshHold(b)
	case p.n > 0:
		err = l.take(b, p.class, p.n)
	}
	if err != nil {
		l.failAll(b, l.redisError(err))
	}
	return p.sleep, true
}

// plan decides b's next move from what the last Redis answers said; a waiter
// that cannot be served within its MaxWait is told so before a sleep.
func (l *Limiter) plan(b *bucket, now time.Time) plan {
	if hold := b.holdUntil.Sub(now); hold > 0 {
		l.expel(b, now)
		return plan{sleep: hold}
	}
	front := b.front()
	c := front.class
	n := b.grantable(c, b.available(l, c, now))
	if n < 1 {
		l.expel(b, now)
		enough := b.nextToken(l, c, now).Add(time.Duration(front.need-1) * l.interval)
		return plan{sleep: max(enough.Sub(now), time.Millisecond)}
	}
	if now.Sub(b.holdChecked) >= l.p.HoldRefresh {
		return plan{refresh: true}
	}
	return plan{class: c, n: n}
}

// take asks Redis for exactly n tokens of class c and hands them out. It uses
// AllowN, all or nothing, rather than AllowAtMost: a partial AllowAtMost grant
// charges the budget for a fraction of a token it does not hand out.
func (l *Limiter) take(b *bucket, c Class, n int) error {
	res, err := l.gcra.AllowN(l.ctx, b.keys.rate, l.limits[c], n)
	if err != nil {
		return err
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b.tat = now.Add(res.ResetAfter)
	if res.Allowed == 0 {
		l.stats.denials.Add(1)
		return nil
	}
	l.hand(b, res.Allowed)
	return nil
}

// refreshHold reads the shared hold of b's budget, which another process may
// have set.
func (l *Limiter) refreshHold(b *bucket) error {
	ttl, err := l.rdb.PTTL(l.ctx, b.keys.hold).Result()
	if err != nil {
		return err
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b.holdChecked = now
	if ttl > 0 {
		b.extendHold(now.Add(ttl))
	}
	return nil
}

// redisError turns a failed Redis call into what waiters are told: no token
// is granted without Redis.
func (l *Limiter) redisError(err error) error {
	if l.ctx.Err() != nil {
		return ErrClosed
	}
	l.stats.errors.Add(1)
	return fmt.Errorf("ratelimit: ask redis for a token: %w", err)
}

// failAll finishes every waiter of b with err.
func (l *Limiter) failAll(b *bucket, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := b.front(); w != nil; w = b.front() {
		l.finish(b, w, err)
	}
}

// shut ends b on Close.
func (l *Limiter) shut(b *bucket) {
	l.failAll(b, ErrClosed)
	l.mu.Lock()
	delete(l.buckets, b.keys.rate)
	l.mu.Unlock()
}
