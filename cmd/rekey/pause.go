package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/devstack"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/tasks"
)

// bulkPause says why the bulk queue is paused, or "" while it runs or
// when that cannot be read: the circuit breaker opened (README "The circuit
// breaker"), or someone paused it (asynq's CLI or Inspector). Paused, the
// pacing feeder releases none of its rotations: a wave waits. /monitoring
// is read only (rekey web answers 405 to its pause and resume), so the one
// way named to resume is rekey's own command.
func bulkPause(ctx context.Context, a *app) string {
	b, err := a.breaker()
	if err != nil {
		return ""
	}
	s, err := b.Status(ctx)
	switch {
	case err != nil || !s.BulkPaused:
		return ""
	case s.Open:
		return "the circuit breaker is " + printable.Text(s.Line())
	}
	return fmt.Sprintf("it was paused by hand (asynq), the circuit breaker being closed; resume it with `%s`",
		breaker.ResumeCommand)
}

// warnBulkPaused warns, on stderr, that n rotations just enqueued on the
// bulk queue wait while it is paused.
func warnBulkPaused(ctx context.Context, w io.Writer, a *app, n int) {
	if n == 0 {
		return
	}
	if why := bulkPause(ctx, a); why != "" {
		fmt.Fprintf(w, "warning: the bulk queue is paused, so none of these %s starts until it is resumed: %s\n",
			rotations(n), why)
	}
}

// warnRevokePaused warns, on stderr, that the n revocations just run or
// enqueued wait while the revoke queue is paused by hand
// (reconcile.RevokeQueuePaused), which rekey_queue_paused shows but a
// command saying the task "runs now" did not, and how to resume it.
// Nothing is said when insp cannot tell.
func warnRevokePaused(w io.Writer, insp any, n int) {
	if n == 0 || !reconcile.RevokeQueuePaused(insp) {
		return
	}
	waits := "this revocation waits"
	if n > 1 {
		waits = fmt.Sprintf("these %d revocations wait", n)
	}
	fmt.Fprintf(w, "warning: the revoke queue is paused, so %s until it is resumed: it was paused by hand "+
		"(asynq's CLI or Inspector); resume it with `asynq queue unpause %s`\n", waits, tasks.QueueRevoke)
}

// warnUnpaced warns, on stderr, that n rotations just enqueued on the
// default queue, more than a handful, go as a wave would not: the pacing
// feeder does not meter them, the circuit breaker does not pause them
// (it is said when it is open), and they share the lane revocations run
// in. An operator may have read --queue default as "the default queue".
func warnUnpaced(ctx context.Context, w io.Writer, a *app, queue string, n int) {
	if queue != tasks.QueueDefault || n <= confirmLimit {
		return
	}
	open := ""
	if b, err := a.breaker(); err == nil {
		if s, err := b.Status(ctx); err == nil && s.Open {
			open = "; the circuit breaker is " + printable.Text(s.Line()) + ", and these run all the same"
		}
	}
	fmt.Fprintf(w, "warning: %s on the default queue: the pacing feeder does not meter them (they take Heroku's budget "+
		"as it comes, ahead of waves), the circuit breaker does not pause them, and they share the lane revocations "+
		"run in; a fleet goes on --queue bulk (the default for more than %d instances)%s\n", rotations(n), confirmLimit, open)
}

// rotations is "1 rotation" or "n rotations".
func rotations(n int) string { return count(n, "rotation", "rotations") }

// pauseWatch tells, while a batch is followed, when the bulk queue is
// paused and when it runs again, and when no worker runs at all, so that
// --wait does not sit silent.
type pauseWatch struct {
	check func(context.Context) string
	last  string
	// workers counts the worker processes' asynq servers that poll rekey's
	// queues; nil looks for none.
	workers   func() (int, error)
	stillFor  time.Duration // how long the batch has not moved before workers is asked
	lastMove  time.Time
	lastLook  time.Time
	lastCount int64
	noWorker  bool
	// failing reads whether the wave's rotations all fail, so that the
	// feeder releases a probe at a time (pacing.WaveHealth); nil looks
	// for none. slowed is its last answer.
	failing func(context.Context) (pacing.WaveHealth, error)
	slowed  bool
}

// newPauseWatch watches a's bulk queue and its workers.
func newPauseWatch(a *app) *pauseWatch {
	w := newWorkerWatch(a)
	w.check = func(ctx context.Context) string { return bulkPause(ctx, a) }
	w.failing = func(ctx context.Context) (pacing.WaveHealth, error) {
		return pacing.ReadWaveHealth(ctx, a.rdb, a.clock.Now())
	}
	return w
}

// slowedLine returns a line when the wave's rotations start failing, every
// one of them, so that the feeder releases one every pacing.ProbeEvery
// (docs/design.md, "Pacing a wave"), and one when a rotation goes through
// again, or the failures stop with none rotated; else "".
func (p *pauseWatch) slowedLine(ctx context.Context) string {
	if p == nil || p.failing == nil {
		return ""
	}
	h, err := p.failing(ctx)
	if err != nil || h.Failing() == p.slowed {
		return ""
	}
	p.slowed = h.Failing()
	switch {
	case !p.slowed && h.Rotated > 0:
		return "a rotation went through: the wave goes at the budget's pace again"
	case !p.slowed:
		// The failures stopped with no rotation: nothing ran (the bulk
		// queue paused, no worker, nothing left to release), which says
		// nothing of the issuer's or Heroku's recovery.
		return "no longer slowed, but no rotation went through: none of the wave's rotations ran lately; " +
			"the next to run says whether the issuer and Heroku answer again"
	}
	why := fmt.Sprintf("%d or more runs of the wave's rotations failed in the last minute and none rotated", pacing.FailingAfter)
	if h.Rotated > 0 || h.Failed < pacing.FailingAfter {
		why = fmt.Sprintf("the first runs of %d of the wave's rotations failed one after the other, none rotating", h.Streak)
	}
	return fmt.Sprintf("slowed: %s (the issuer or Heroku failing: rekey_issuer_calls_total and rekey_heroku_calls_total "+
		"in /metrics say which), so one is released every %v until one rotates", why, pacing.ProbeEvery)
}

// newWorkerWatch watches only whether a worker runs: for a batch on a
// queue nobody pauses.
func newWorkerWatch(a *app) *pauseWatch {
	insp := asynq.NewInspectorFromRedisClient(a.rdb)
	return &pauseWatch{stillFor: workerCheckAfter, workers: func() (int, error) {
		servers, err := insp.Servers()
		n := 0
		for _, s := range servers {
			if devstack.PollsRekeyQueues(s) {
				n++
			}
		}
		return n, err
	}}
}

// workerCheckAfter is how long a followed batch has not moved before the
// watch asks whether any worker runs.
const workerCheckAfter = 5 * time.Second

// idle returns, once, a line saying that no worker polls rekey's queues
// when the batch (finished rotations: done) has not moved for stillFor
// and asynq lists no server of a worker, and a line when one shows up
// again; else "". It asks asynq at most every stillFor. A worker only
// just started is listed within seconds.
func (p *pauseWatch) idle(now time.Time, done int64) string {
	if p == nil || p.workers == nil {
		return ""
	}
	if done != p.lastCount || p.lastMove.IsZero() {
		p.lastCount, p.lastMove = done, now
	}
	// A still batch asks asynq at most every stillFor, not every tick.
	if !p.noWorker && now.Sub(p.lastMove) < p.stillFor || now.Sub(p.lastLook) < p.stillFor {
		return ""
	}
	p.lastLook = now
	n, err := p.workers()
	switch {
	case err != nil:
	case n == 0 && !p.noWorker:
		p.noWorker = true
		return "no `rekey worker` is running: asynq lists no worker polling rekey's queues, so nothing of the batch " +
			"moves; start one (the Procfile's worker process), and this goes on by itself"
	case n > 0 && p.noWorker:
		p.noWorker = false
		return "a `rekey worker` is running again"
	}
	return ""
}

// look checks the queue and returns the line to print when it went from
// running to paused or back, else "". A pause whose reason changes stays
// one pause: `rekey breaker resume` closes the breaker a moment before it
// resumes the queue, which reads as "paused by hand" in between.
func (p *pauseWatch) look(ctx context.Context) string {
	if p == nil || p.check == nil {
		return ""
	}
	why := p.check(ctx)
	was := p.last
	p.last = why
	switch {
	case why != "" && was == "":
		return "waiting: the bulk queue is paused, so its rotations do not start: " + why
	case why == "" && was != "":
		return "the bulk queue runs again"
	}
	return ""
}
