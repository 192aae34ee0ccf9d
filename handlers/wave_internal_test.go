package handlers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

type waveFunc func(ctx context.Context, rotated, retried bool)

func (f waveFunc) Record(ctx context.Context, rotated, retried bool) { f(ctx, rotated, retried) }

func (waveFunc) Outage(context.Context) bool { return false }

// Only a bulk run that rotated, failed for a retry, failed for good for
// a reason the whole wave may meet (waveFailure), or was put off by the
// token endpoint's 429 (tokenLater) tells the feeder of the issuer's and Heroku's health: any
// other permanent failure is one instance's, a join or a wait for the
// budget says nothing, and interactive and default work is not the wave's.
func TestOnlyBulkRunsThatRotateOrFailForAllReachTheWave(t *testing.T) {
	var got []bool
	d := &Deps{Wave: waveFunc(func(_ context.Context, rotated, _ bool) { got = append(got, rotated) })}
	for _, run := range []struct {
		queue, outcome string
		waveFailed     bool
	}{
		{tasks.QueueBulk, OutcomeRotated, false}, {tasks.QueueBulk, OutcomeRetry, false},
		{tasks.QueueBulk, OutcomeFailed, false}, {tasks.QueueBulk, OutcomeFailed, true},
		{tasks.QueueBulk, OutcomeJoined, false}, {tasks.QueueBulk, OutcomeRateLimited, false},
		{tasks.QueueBulk, OutcomeRateLimited, true},
		{tasks.QueueBulk, OutcomeSkipped, false}, {tasks.QueueInteractive, OutcomeRetry, false},
		{tasks.QueueInteractive, OutcomeFailed, true}, {tasks.QueueDefault, OutcomeRotated, false},
	} {
		d.observeRotation(t.Context(), run.queue, run.outcome, run.waveFailed)
	}
	if want := []bool{true, false, false, false}; !slices.Equal(got, want) {
		t.Errorf("the wave heard %v, want %v: the bulk run that rotated, the one that failed for a retry, "+
			"the one that failed for good for the wave's reason, the one the token endpoint's 429 put off", got, want)
	}
}

// Every permanent failure at the issuer's steps may be the whole wave's (an
// issuer refusing every mint), and so may a push answered in a way that is
// not Heroku's (a front before it); Heroku's own refusal, or an instance
// found deprovisioned, is its instance's.
func TestWaveFailureIsAnIssuerStepsPermanentFailure(t *testing.T) {
	refused := &issuer.Error{Op: "mint", Status: http.StatusForbidden, Code: "tenant_suspended"}
	for _, c := range []struct {
		step string
		err  error
		want bool
	}{
		{stepMint, refused, true},
		{stepMint, &ConfigMismatchError{}, true},
		{stepMint, store.ErrCredentialReused, true},
		{stepVerify, &issuer.UnknownCredentialError{}, true},
		{stepMint, permanent(errDeprovisionedSince), false},
		{stepPush, permanent(errDeprovisionedSince), false},
		{stepPush, &heroku.APIError{Status: http.StatusNotFound, ID: "not_found"}, false},
		{stepPush, fmt.Errorf("heroku patch_config: a 2xx page (text/html): %w", heroku.ErrUnexpectedAnswer), true},
		{stepReadBack, &heroku.APIError{Status: http.StatusForbidden, ID: "forbidden"}, false},
	} {
		if got := waveFailure(c.step, c.err); got != c.want {
			t.Errorf("waveFailure(%q, %v) = %v, want %v", c.step, c.err, got, c.want)
		}
	}
}
