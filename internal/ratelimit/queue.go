package ratelimit

import (
	"container/list"
	"time"
)

// bucket is one process's view of one budget while callers wait on it. Its
// fields are guarded by Limiter.mu; its dispatcher goroutine lives as long as
// it is in Limiter.buckets.
type bucket struct {
	keys   scopeKeys
	queues [numClasses]list.List // of *waiter, in arrival order
	// tat is the GCRA theoretical arrival time Redis last reported, in local
	// time: the budget is empty until then, and refills one token per
	// interval before it.
	tat         time.Time
	holdUntil   time.Time // no token is taken before this
	holdChecked time.Time // when Redis was last asked about the hold
	kick        chan struct{}
}

// bucketMemo is what a bucket learned from Redis, kept after its last
// waiter left: the next caller, often the pacing feeder a budget interval
// later, starts from it instead of from nothing. Without it every such
// caller asked Redis for a token it could not have yet (a refusal) and for
// the shared pause, before asking again at the right time.
type bucketMemo struct {
	tat, holdUntil, holdChecked time.Time
	hold                        string // the budget's hold key (scopeKeys.hold)
}

// maxMemos bounds Limiter.memos; with ScopeInstance a key per instance
// would otherwise stay for good.
const maxMemos = 1024

// remember keeps b's memo; guarded by Limiter.mu.
func (l *Limiter) remember(b *bucket, now time.Time) {
	if len(l.memos) >= maxMemos {
		for k, m := range l.memos {
			if m.tat.Before(now) && m.holdUntil.Before(now) {
				delete(l.memos, k)
			}
		}
	}
	if len(l.memos) < maxMemos {
		l.memos[b.keys.rate] = bucketMemo{tat: b.tat, hold: b.keys.hold, holdUntil: b.holdUntil, holdChecked: b.holdChecked}
	}
}

// recall starts b from the memo of its key, if any; guarded by Limiter.mu.
func (l *Limiter) recall(b *bucket) {
	if m, ok := l.memos[b.keys.rate]; ok {
		b.tat, b.holdUntil, b.holdChecked = m.tat, m.holdUntil, m.holdChecked
		delete(l.memos, b.keys.rate)
	}
}

// waiter is one blocked Wait call.
type waiter struct {
	class    Class
	need     int // tokens, granted together
	keys     scopeKeys
	deadline time.Time     // when MaxWait runs out
	elem     *list.Element // nil once finished
	done     chan error    // receives the outcome once; buffered
}

// enqueue queues a caller of class c, starting the key's dispatcher if none
// runs. It returns a *DelayError instead when the wait already looks too long.
func (l *Limiter) enqueue(keys scopeKeys, c Class, need int, now time.Time) (*waiter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	b := l.buckets[keys.rate]
	if b == nil {
		b = &bucket{keys: keys, kick: make(chan struct{}, 1)}
		l.recall(b)
		l.buckets[keys.rate] = b
		l.wg.Add(1)
		go l.dispatch(b)
	}
	if eta := l.eta(b, c, b.ahead(c)+need-1, now); eta > l.p.MaxWait {
		return nil, l.delay(eta)
	}
	w := &waiter{class: c, need: need, keys: keys, deadline: now.Add(l.p.MaxWait), done: make(chan error, 1)}
	w.elem = b.queues[c].PushBack(w)
	if c == Interactive {
		b.nudge() // it may take the reserve while the dispatcher sleeps
	}
	return w, nil
}

// leave takes w out of its queue with err, or with a *DelayError when err is
// nil. It does nothing when w is already finished.
func (l *Limiter) leave(w *waiter, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.elem == nil {
		return
	}
	b := l.buckets[w.keys.rate]
	if err == nil {
		err = l.delay(l.eta(b, w.class, b.position(w), time.Now()))
	}
	l.finish(b, w, err)
	b.nudge() // the dispatcher may have nobody left to serve
}

// passOn gives n tokens their waiter no longer wants to the next in line.
func (l *Limiter) passOn(keys scopeKeys, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hand(l.buckets[keys.rate], n)
}

// hand grants n tokens to the first waiters of b, which may be nil, each
// as many as it needs; tokens too few for the next waiter go unused.
func (l *Limiter) hand(b *bucket, n int) {
	for n > 0 {
		w := b.front()
		if w == nil || w.need > n {
			l.stats.unused.Add(uint64(n))
			return
		}
		n -= w.need
		l.finish(b, w, nil)
	}
}

// finish takes w out of b's queue and tells Wait the outcome.
func (l *Limiter) finish(b *bucket, w *waiter, err error) {
	b.queues[w.class].Remove(w.elem)
	w.elem = nil
	w.done <- err
}

// expel gives a *DelayError to every waiter of b that cannot expect a token
// before its MaxWait runs out.
func (l *Limiter) expel(b *bucket, now time.Time) {
	pos := 0
	for _, c := range dispatchOrder {
		for e := b.queues[c].Front(); e != nil; {
			w, next := e.Value.(*waiter), e.Next()
			if eta := l.eta(b, c, pos, now); now.Add(eta).After(w.deadline) {
				l.finish(b, w, l.delay(eta))
			} else {
				pos++
			}
			e = next
		}
	}
}

// eta is how long a class c caller with pos callers served before it should
// expect to wait for a token, counting this process's queue only.
func (l *Limiter) eta(b *bucket, c Class, pos int, now time.Time) time.Duration {
	at := b.nextToken(l, c, now).Add(time.Duration(pos) * l.interval)
	if b.holdUntil.After(at) {
		at = b.holdUntil
	}
	return max(at.Sub(now), 0)
}

// delay is the *DelayError for an expected wait of eta.
func (l *Limiter) delay(eta time.Duration) *DelayError {
	return &DelayError{RetryIn: max(eta, l.interval)}
}

// nextToken is when class c may next take a token, by the last Redis answer:
// burst(c)-1 intervals before the theoretical arrival time.
func (b *bucket) nextToken(l *Limiter, c Class, now time.Time) time.Time {
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	return tat.Add(-time.Duration(l.burst(c)-1) * l.interval)
}

// available is how many tokens class c may take now, by the last Redis answer.
func (b *bucket) available(l *Limiter, c Class, now time.Time) int {
	next := b.nextToken(l, c, now)
	if now.Before(next) {
		return 0
	}
	return int(now.Sub(next)/l.interval) + 1
}

// grantable is how many of avail tokens class c's waiters take now: whole
// waiters, in order, while their needs fit.
func (b *bucket) grantable(c Class, avail int) int {
	n := 0
	for e := b.queues[c].Front(); e != nil; e = e.Next() {
		need := e.Value.(*waiter).need
		if n+need > avail {
			break
		}
		n += need
	}
	return n
}

// ahead counts the waiters served before a new caller of class c.
func (b *bucket) ahead(c Class) int {
	n := b.queues[Interactive].Len()
	if c == Background {
		n += b.queues[Background].Len()
	}
	return n
}

// position counts the waiters served before w.
func (b *bucket) position(w *waiter) int {
	n := b.ahead(w.class) - b.queues[w.class].Len()
	for e := b.queues[w.class].Front(); e != w.elem; e = e.Next() {
		n++
	}
	return n
}

// front is the waiter served next, or nil.
func (b *bucket) front() *waiter {
	if b == nil {
		return nil
	}
	for _, c := range dispatchOrder {
		if e := b.queues[c].Front(); e != nil {
			return e.Value.(*waiter)
		}
	}
	return nil
}

// idle reports whether nobody waits on b.
func (b *bucket) idle() bool { return b.front() == nil }

// nudge wakes b's dispatcher to look at its queues again.
func (b *bucket) nudge() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// extendHold makes sure no token is taken before until.
func (b *bucket) extendHold(until time.Time) {
	if until.After(b.holdUntil) {
		b.holdUntil = until
	}
}
