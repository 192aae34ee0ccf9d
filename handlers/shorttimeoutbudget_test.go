package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/handlers"
)

// TestAShortTimeoutsWaitForTheBudgetIsNoFailure: another app enqueues its
// rotate task with asynq.Timeout(time.Second) while the shared budget is
// paused by a 429, under MaxWait's 30 s. The run ends before its
// deadline with a wait for the budget (handlers.IsFailure: no failure);
// it waited until its deadline, which asynq takes for a failure whatever
// the handler returns, so each such wait used up one of the task's
// retries and lengthened its back-off.
func TestAShortTimeoutsWaitForTheBudgetIsNoFailure(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	lim := g.useBudget(t)
	lim.Observe("inst-1", -1, http.StatusTooManyRequests)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := g.mux.ProcessTask(ctx, rotateTask(t, "inst-1", "rot_short"))
	if ctx.Err() != nil {
		t.Fatalf("the run ended after its deadline (%v): asynq counts it a failure", err)
	}
	var later *handlers.RetryLaterError
	if !errors.As(err, &later) || handlers.IsFailure(err) {
		t.Errorf("run = %v, want a wait for the budget that is no failure", err)
	}
}
