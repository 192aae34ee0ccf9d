package handlers

import (
	"context"
	"slices"
	"testing"

	"github.com/rekeyhq/rekey/tasks"
)

type waveFunc func(ctx context.Context, rotated bool)

func (f waveFunc) Record(ctx context.Context, rotated, _ bool) { f(ctx, rotated) }

// Only a bulk run that rotated or failed for a retry tells the feeder of
// the issuer's and Heroku's health: a permanent failure is one instance's,
// a join or a wait for the budget says nothing, and interactive and
// default work is not the wave's.
func TestOnlyBulkRunsThatRotateOrRetryReachTheWave(t *testing.T) {
	var got []bool
	d := &Deps{Wave: waveFunc(func(_ context.Context, rotated bool) { got = append(got, rotated) })}
	for _, run := range []struct{ queue, outcome string }{
		{tasks.QueueBulk, OutcomeRotated}, {tasks.QueueBulk, OutcomeRetry}, {tasks.QueueBulk, OutcomeFailed},
		{tasks.QueueBulk, OutcomeJoined}, {tasks.QueueBulk, OutcomeRateLimited}, {tasks.QueueBulk, OutcomeSkipped},
		{tasks.QueueInteractive, OutcomeRetry}, {tasks.QueueDefault, OutcomeRotated},
	} {
		d.observeRotation(t.Context(), run.queue, run.outcome)
	}
	if want := []bool{true, false}; !slices.Equal(got, want) {
		t.Errorf("the wave heard %v, want %v: the bulk run that rotated, then the one that failed for a retry", got, want)
	}
}
