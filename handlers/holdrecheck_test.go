package handlers_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/tasks"
)

// TestHoldRecheckNeverPassesTheCap: a held revocation is asked about again
// after REKEY_HOLD_RECHECK, but never later than its cap (REKEY_HOLD_MAX
// past the grace): with a re-check longer than the cap (REKEY_HOLD_RECHECK=720h
// beside REKEY_HOLD_MAX=24h) the old credential would otherwise stay valid
// the whole re-check past the cap that bounds every hold.
func TestHoldRecheckNeverPassesTheCap(t *testing.T) {
	t.Parallel()
	var later atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	g := newRig(t, issuer.WithDemoClock(clock))
	const holdMax = 24 * time.Hour
	g.deps.HoldStore = g.st
	g.deps.Holds = handlers.HoldPolicy{Quiet: 15 * time.Minute, Recheck: 720 * time.Hour, Max: holdMax}
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")
	if err := g.run(rotateTask(t, "inst-1", "rot_h")); err != nil {
		t.Fatal(err)
	}
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	g.demo.UseUntil(before.CurrentCredential, time.Now().Add(10000*time.Hour), "one-off dyno run.1")
	step := int64(grace + time.Second)
	g.later.Store(step)
	later.Store(step)
	err := g.run(revoke)
	var wait *handlers.RetryLaterError
	if !errors.As(err, &wait) {
		t.Fatalf("revoke of a credential in use: %v, want it held", err)
	}
	if wait.After > holdMax {
		t.Errorf("held revocation asks again in %s, past its cap %s after the grace", wait.After, holdMax)
	}
	if !g.demo.Valid(before.CurrentCredential) {
		t.Fatal("a credential in use was revoked at its grace")
	}
}
