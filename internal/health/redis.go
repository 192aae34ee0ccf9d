// Package health watches Redis, the one service every rekey process needs,
// so that a process started before Redis, or living through an outage,
// waits and retries instead of exiting, and says so once per change of
// state rather than once per attempt.
package health

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of Params.
const (
	// DefaultMinBackoff is the first wait after a failed ping.
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff caps the wait between pings while Redis is down.
	DefaultMaxBackoff = 30 * time.Second
	// DefaultInterval is the wait between pings while Redis answers.
	DefaultInterval = 5 * time.Second
	// pingTimeout bounds one ping, so a black-holed connection counts as down.
	pingTimeout = 3 * time.Second
)

// Params build a Redis watcher.
type Params struct {
	// Ping asks Redis whether it answers, as redis.Client.Ping(ctx).Err
	// does. Required.
	Ping func(context.Context) error
	// Logger receives one line per change of state: redis_down, redis_up.
	Logger zerolog.Logger
	// Redact removes secrets (the password in REDIS_URL) from an error's
	// text before it is logged; nil keeps the text as it is.
	Redact func(string) string
	// MinBackoff and MaxBackoff bound the wait between pings while Redis is
	// down: it starts at MinBackoff and doubles up to MaxBackoff, jittered.
	// Zero means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Interval is the wait between pings while Redis answers; zero means
	// DefaultInterval.
	Interval time.Duration
	// Full says, when Redis refuses new connections for having reached
	// its maxclients, what to lower (MaxClientsHint on the process's
	// Redis); "" otherwise. nil never asks.
	Full func(context.Context) string
}

// fullRepeat is how often redis_full is logged again while Redis stays at
// its maxclients: asynq retries a refused subscription every few seconds.
const fullRepeat = 10 * time.Minute

// Redis tracks whether Redis answers. Its methods are safe for concurrent
// use, and a nil *Redis reports Redis as up (for processes that checked
// Redis once at start and exit on failure, such as the CLI commands).
type Redis struct {
	p Params

	mu    sync.Mutex
	state state
	since time.Time
	// upc is closed while Redis is up, and replaced when it goes down.
	upc chan struct{}
	// answered is set once a ping has been answered.
	answered bool
	// refusal is set, and refusedc closed, when Redis refused REDIS_URL
	// for good before it ever answered it (refuses).
	refusal  *RefusedError
	refusedc chan struct{}
	// suspect is set when a library reported an error while Redis was up,
	// until the next ping says whether Redis is down.
	suspect atomic.Bool
	// wake asks Run to ping at once.
	wake chan struct{}
	// fullSaid is when redis_full was last logged. A probe Redis takes
	// does not clear it: a Redis at its maxclients takes the odd one
	// whenever a connection closes, and each refusal after it would be
	// logged as a first one. Guarded by mu.
	fullSaid time.Time
}

type state int

const (
	unknown state = iota
	up
	down
)

// NewRedis returns a watcher; call Run to start pinging.
func NewRedis(p Params) (*Redis, error) {
	if p.Ping == nil {
		return nil, errors.New("health: Ping is required")
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = DefaultMinBackoff
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = max(DefaultMaxBackoff, p.MinBackoff)
	}
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Redact == nil {
		p.Redact = func(s string) string { return s }
	}
	return &Redis{p: p, upc: make(chan struct{}), refusedc: make(chan struct{}), wake: make(chan struct{}, 1)}, nil
}

// RefusedError is Redis refusing REDIS_URL before it ever answered it, in
// a way no waiting mends: a wrong user or password, none where one is
// needed, a database it does not have (URLRefusal), TLS where the server
// speaks none or the other way round (WrongTLSError). Wait returns it, so
// a process exits with it at start rather than wait for ever as it does
// through an outage. Once Redis has answered, the watcher waits through
// any error: a password rotated under a running process is the
// operator's to roll out.
type RefusedError struct {
	err  error
	text string
	// Detail says what to fix, as the redis_down line does.
	Detail string
}

// Error is Redis's answer, without REDIS_URL's password, and Detail.
func (e *RefusedError) Error() string { return strings.TrimSuffix(e.text, ".") + "; " + e.Detail }

// Unwrap is the failed ping's error, for NoSuchDB and the like: its text
// may hold a secret, which Error does not.
func (e *RefusedError) Unwrap() error { return e.err }

// refuses reports whether err, a failed ping's, is one that no waiting
// mends. LOADING, READONLY, MASTERDOWN, a refused or timed-out connection
// and a Redis at its maxclients are what a restart, a failover or a busy
// moment answer, and are not.
func refuses(err error) bool {
	if _, ok := errors.AsType[*WrongTLSError](err); ok {
		return true
	}
	return URLRefusal(err) != ""
}

// Refusal is Redis's refusal of REDIS_URL before it ever answered it
// (RefusedError), nil when it answered or has not refused so.
func (r *Redis) Refusal() *RefusedError {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refusal
}

// Run pings Redis until ctx is done: every Interval while it answers, and
// with a growing, jittered back-off while it does not.
func (r *Redis) Run(ctx context.Context) {
	backoff := r.p.MinBackoff
	for {
		wait := r.p.Interval
		if r.Check(ctx) {
			backoff = r.p.MinBackoff
		} else if r.Refusal() != nil {
			return // Wait returns the refusal: the process exits
		} else {
			wait = jitter(backoff)
			backoff = min(2*backoff, r.p.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.wake:
			t.Stop()
		}
	}
}

// jitter spreads a wait over [d/2, d), so processes restarted together do
// not ping in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// Check pings Redis once, records the answer and logs a change of state.
// It reports whether Redis answered.
func (r *Redis) Check(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err := r.p.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return r.Up() // shutting down: the answer says nothing about Redis
	}
	r.record(err)
	if r.suspect.Swap(false) && err == nil {
		r.checkFull(ctx)
	}
	return err == nil
}

// checkFull asks, after a library's error on a Redis that still answers
// the pool's ping, whether Redis refuses new connections for having
// reached its maxclients, and logs redis_full when it does, at most once
// every fullRepeat. The ping travels over a connection the pool already
// holds, so it answers while every new connection (a subscription, a
// pool's growth) is refused: without this the process ran on short of
// connections with no word of why but the library's "broken pipe".
func (r *Redis) checkFull(ctx context.Context) {
	if r.p.Full == nil {
		return
	}
	hint := r.p.Full(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if hint != "" && (r.fullSaid.IsZero() || time.Since(r.fullSaid) >= fullRepeat) {
		r.p.Logger.Error().Str("detail", hint).Msg("redis_full")
		r.fullSaid = time.Now()
	}
}

func (r *Redis) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if err != nil && !r.answered && r.refusal == nil && refuses(err) {
		r.refuse(err)
		return
	}
	switch {
	case err == nil && r.state != up:
		ev := r.p.Logger.Info()
		if r.state == down {
			ev = ev.Dur("down_for", now.Sub(r.since).Round(time.Millisecond))
		}
		ev.Msg("redis_up")
		r.state, r.since, r.answered = up, now, true
		close(r.upc)
	case err != nil && r.state != down:
		r.p.Logger.Error().Str("error", r.p.Redact(err.Error())).Dur("max_backoff", r.p.MaxBackoff).
			Str("detail", downDetail(err)+"; waiting and retrying, one line when it answers again").
			Msg("redis_down")
		if r.state == up {
			r.upc = make(chan struct{})
		}
		r.state, r.since = down, now
	}
}

// refuse records err as Redis's refusal of REDIS_URL (RefusedError) and
// logs it as redis_down, unless a line said Redis was down already.
// Guarded by mu.
func (r *Redis) refuse(err error) {
	r.refusal = &RefusedError{err: err, text: r.p.Redact(err.Error()), Detail: downDetail(err)}
	close(r.refusedc)
	if r.state != down {
		r.p.Logger.Error().Str("error", r.refusal.text).
			Str("detail", r.refusal.Detail+"; exiting, since waiting does not mend it").Msg("redis_down")
	}
	r.state, r.since = down, time.Now()
}

// downDetail says why a ping failed in an operator's words: REDIS_URL's
// scheme disagrees with the server's TLS (WrongTLSError), Redis is at its
// maxclients (MaxClientsError), or Redis answers
// but refuses REDIS_URL (URLRefusal), which waiting alone does not mend, or
// it does not answer.
func downDetail(err error) string {
	if wrong, ok := errors.AsType[*WrongTLSError](err); ok {
		return wrong.Hint
	}
	if full, ok := errors.AsType[*MaxClientsError](err); ok {
		return full.Hint
	}
	if why := URLRefusal(err); why != "" {
		return why
	}
	var answered interface{ RedisError() } // go-redis's redis.Error: Redis's own answer
	if errors.As(err, &answered) {
		return "Redis answers with an error"
	}
	return "Redis does not answer"
}

// URLRefusal says, when err is Redis refusing REDIS_URL's user, password
// or database number (a typo, or a password rotated since), which and what
// to check; "" for any other error.
func URLRefusal(err error) string {
	var answered interface{ RedisError() }
	if err == nil || !errors.As(err, &answered) {
		return ""
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "invalid password"),
		strings.Contains(msg, "invalid username-password"):
		return "Redis answers but refuses REDIS_URL's user or password: check REDIS_URL (on Heroku, the add-on's current one)"
	case NoSuchDB(err):
		return "Redis answers but has no database of REDIS_URL's number (the path after the port): check REDIS_URL"
	}
	return ""
}

// NoSuchDB reports whether err is Redis refusing REDIS_URL's database
// number, which it does not have.
func NoSuchDB(err error) bool {
	var answered interface{ RedisError() }
	return err != nil && errors.As(err, &answered) && strings.Contains(err.Error(), "DB index is out of range")
}

// NoPermission reports whether err is Redis refusing REDIS_URL's user a
// command its ACL does not allow (NOPERM), which no waiting mends.
func NoPermission(err error) bool {
	var answered interface {
		error
		RedisError()
	}
	return errors.As(err, &answered) && strings.HasPrefix(answered.Error(), "NOPERM")
}

// Up reports whether the last ping was answered. It is false until the
// first ping answers.
func (r *Redis) Up() bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == up
}

// Quiet reports whether Redis is down or not yet known to be up: loggers of
// libraries that retry on their own (asynq, go-redis) demote their lines
// then, since the one redis_down line already said it.
func (r *Redis) Quiet() bool { return !r.Up() }

// LibraryError is for the loggers of libraries that talk to Redis (asynq,
// go-redis, components that only use Redis): call it before logging a
// warning or an error; it reports whether to demote the line. While Redis
// is down, or a ping is checking it, it does. Otherwise the line is logged
// and Run pings at once, so an outage is noticed within one ping rather
// than one Interval, and the lines of its first seconds are demoted too.
func (r *Redis) LibraryError() (quiet bool) {
	if r == nil {
		return false
	}
	if !r.Up() || r.suspect.Swap(true) {
		return true
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return false
}

// Wait blocks until Redis answers or ctx is done, and returns ctx's error
// in the second case, and the *RefusedError when Redis refused REDIS_URL
// before it ever answered (Refusal). Run must be running for it to return
// nil later.
func (r *Redis) Wait(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	c := r.upc
	r.mu.Unlock()
	select {
	case <-c:
		return nil
	case <-r.refusedc:
		return r.Refusal()
	case <-ctx.Done():
		return ctx.Err()
	}
}
