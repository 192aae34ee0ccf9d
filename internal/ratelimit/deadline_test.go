package ratelimit_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// A caller whose context has a deadline before the budget can grant it
// (another app's rotate task enqueued with asynq.Timeout(time.Second),
// under MaxWait's 30 s) is told to come back with a *DelayError before its
// deadline, as one that would wait past MaxWait is. It waited until its
// context ended: asynq takes a run whose deadline passed for a failure,
// whatever the handler returns, so each wait for the budget used up one
// of the task's retries and lengthened its back-off.
func TestADeadlineBeforeTheBudgetGrantsIsADelay(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	p := ratelimit.Params{PerHour: perSecond(20), Backoff: 5 * time.Second}
	l := newProcess(t, r, p)
	l.Observe("addon", -1, http.StatusTooManyRequests) // a 5 s pause, within MaxWait
	for _, wait := range []func(context.Context) error{
		func(ctx context.Context) error { return l.Wait(ctx, "addon") },
		func(ctx context.Context) error { return l.WaitN(ctx, "addon", 1) },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := wait(ctx)
		left := time.Until(func() time.Time { d, _ := ctx.Deadline(); return d }())
		cancel()
		if d := delayOf(t, err); d < 3*time.Second || d > 5*time.Second {
			t.Errorf("RetryIn %s, want about the rest of the 5 s pause", d)
		}
		if left <= 0 {
			t.Errorf("Wait returned %s after its context's deadline", -left)
		}
	}
}
