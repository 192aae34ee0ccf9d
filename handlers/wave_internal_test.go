package handlers

import (
	"context"
	"slices"
	"testing"

	"github.com/rekeyhq/rekey/tasks"
)

type waveFunc func(ctx context.Context, rotated, retried bool)

func (f waveFunc) Record(ctx context.Context, rotated, retried bool) { f(ctx, rotated, retried) }

// Only a bulk run that rotated, failed for a retry, or failed for good for
// a reason every instance meets alike (the issuer refusing rekey's
// signature) tells the feeder of the issuer's and Heroku's health: any
// other permanent failure is one instance's, a join or a wait for the
// budget says nothing, and interactive and default work is not the wave's.
func TestOnlyBulkRunsThatRotateOrFailForAllReachTheWave(t *testing.T) {
	var got []bool
	d := &Deps{Wave: waveFunc(func(_ context.Context, rotated, _ bool) { got = append(got, rotated) })}
	for _, run := range []struct {
		queue, outcome string
		fleetwide      bool
	}{
		{tasks.QueueBulk, OutcomeRotated, false}, {tasks.QueueBulk, OutcomeRetry, false},
		{tasks.QueueBulk, OutcomeFailed, false}, {tasks.QueueBulk, OutcomeFailed, true},
		{tasks.QueueBulk, OutcomeJoined, false}, {tasks.QueueBulk, OutcomeRateLimited, false},
		{tasks.QueueBulk, OutcomeSkipped, false}, {tasks.QueueInteractive, OutcomeRetry, false},
		{tasks.QueueInteractive, OutcomeFailed, true}, {tasks.QueueDefault, OutcomeRotated, false},
	} {
		d.observeRotation(t.Context(), run.queue, run.outcome, run.fleetwide)
	}
	if want := []bool{true, false, false}; !slices.Equal(got, want) {
		t.Errorf("the wave heard %v, want %v: the bulk run that rotated, the one that failed for a retry, "+
			"the one the issuer refused rekey's signature", got, want)
	}
}
