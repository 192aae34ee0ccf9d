package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/printable"
)

// bulkPause says why the bulk queue is paused, or "" while it runs or
// when that cannot be read: the circuit breaker opened (README "Circuit
// breaker"), or someone paused it (asynq's Inspector, /monitoring). Paused,
// the pacing feeder releases none of its rotations: a wave waits.
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
	return fmt.Sprintf("it was paused by hand (asynq, /monitoring), the circuit breaker being closed; resume it with `%s` "+
		"or from /monitoring", breaker.ResumeCommand)
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

// rotations is "1 rotation" or "n rotations".
func rotations(n int) string { return count(n, "rotation", "rotations") }

// pauseWatch tells, while a batch is followed, when the bulk queue is
// paused and when it runs again, so that --wait does not sit silent.
type pauseWatch struct {
	check func(context.Context) string
	last  string
}

// newPauseWatch watches a's bulk queue.
func newPauseWatch(a *app) *pauseWatch {
	return &pauseWatch{check: func(ctx context.Context) string { return bulkPause(ctx, a) }}
}

// look checks the queue and returns the line to print when it went from
// running to paused or back, else "". A pause whose reason changes stays
// one pause: `rekey breaker resume` closes the breaker a moment before it
// resumes the queue, which reads as "paused by hand" in between.
func (p *pauseWatch) look(ctx context.Context) string {
	if p == nil {
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
