package ratelimit_test

import (
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// A prepaid token is spent without asking Redis, once per context; a token
// (one every 10 s here, so a missing one shows at once as a delay)
// that was not paid, or a second call, waits for the budget as usual.
func TestPrepaidTokenSkipsTheBudgetOnce(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := newProcess(t, r, ratelimit.Params{PerHour: 360, Burst: 3, Reserve: 1, MaxWait: 2 * time.Second})
	asked := 0
	ctx := ratelimit.WithPrepaid(t.Context(), func() bool { asked++; return true })
	if err := l.Wait(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := l.commands.n.Load(); n != 0 {
		t.Errorf("a prepaid Wait sent %d Redis commands, want none", n)
	}
	for range 2 { // the background burst of 2; the prepaid token is spent
		if err := l.Wait(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if asked != 1 {
		t.Errorf("take asked %d times, want once per context", asked)
	}
	if _, ok := ratelimit.IsDelay(l.Wait(ctx, "a")); !ok {
		t.Error("a fourth Wait got a token: the prepaid one was counted twice or the budget overdrawn")
	}
	unpaid := ratelimit.WithPrepaid(t.Context(), func() bool { return false })
	if _, ok := ratelimit.IsDelay(l.Wait(unpaid, "a")); !ok {
		t.Error("a Wait whose token was not paid skipped the empty budget")
	}
	if s := l.Stats(); s.Prepaid != 1 || s.Background.Granted != 3 {
		t.Errorf("stats %+v, want 1 prepaid of 3 granted", s)
	}
}
