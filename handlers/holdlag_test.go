package handlers_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/tasks"
)

// lagObserver records the lag of every revocation it hears.
type lagObserver struct {
	mu   sync.Mutex
	lags []time.Duration
}

var _ handlers.Observer = (*lagObserver)(nil)

func (o *lagObserver) Rotation(string, string) {}

func (o *lagObserver) Revocation(outcome string, lag time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if outcome == handlers.RevocationRevoked {
		o.lags = append(o.lags, lag)
	}
}

// TestHeldRevocationLagCountsFromTheRelease: a revocation held while its
// credential is in use is due once its hold ends, not at its revoke time,
// so rekey_revoke_lag_seconds does not put a working hold of two hours in
// its top buckets (and fire the README's alert on the lag's p95). Also
// when the issuer fails the revocation after the hold's release and asynq
// runs it again later: the hold is gone by then, and the credential
// remembers when it ended.
func TestHeldRevocationLagCountsFromTheRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		retryAfter time.Duration // 0: the issuer revokes at the release
	}{
		{name: "revoked at the release"},
		{name: "retried after the release", retryAfter: 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var later atomic.Int64
			var failing atomic.Bool
			clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
			fault := func(string, string) error {
				if failing.Load() {
					return &issuer.Error{Op: "revoke", Status: 503, Code: "service_unavailable"}
				}
				return nil
			}
			g := newRig(t, issuer.WithDemoClock(clock), issuer.WithRevokeFault(fault))
			obs := &lagObserver{}
			g.deps.HoldStore, g.deps.Observer = g.st, obs
			g.deps.Holds = handlers.HoldPolicy{Quiet: 15 * time.Minute, Recheck: 5 * time.Minute, Max: 24 * time.Hour}
			advance := func(d time.Duration) { g.later.Store(int64(d)); later.Store(int64(d)) }
			before, _ := g.st.Instance(t.Context(), "inst-1")
			if err := g.run(rotateTask(t, "inst-1", "rot_lag")); err != nil {
				t.Fatal(err)
			}
			revoke := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
			// In use until 30 minutes past the grace, quiet from then on.
			g.demo.UseUntil(before.CurrentCredential, time.Now().Add(grace+30*time.Minute), "one-off dyno run.1")
			advance(grace + time.Second)
			var wait *handlers.RetryLaterError
			if err := g.run(revoke); !errors.As(err, &wait) {
				t.Fatalf("revoke of a credential in use: %v, want it held", err)
			}
			// Two hours past the grace the credential has been quiet long
			// enough: the hold ends and the revocation goes ahead.
			advance(grace + 2*time.Hour)
			failing.Store(tc.retryAfter > 0)
			err := g.run(revoke)
			if tc.retryAfter > 0 {
				if err == nil {
					t.Fatal("revoke with the issuer failing succeeded")
				}
				failing.Store(false)
				advance(grace + 2*time.Hour + tc.retryAfter)
				err = g.run(revoke)
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.demo.Valid(before.CurrentCredential) {
				t.Fatal("the credential is still valid after its hold ended")
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.lags) != 1 {
				t.Fatalf("observed %d revocations, want 1", len(obs.lags))
			}
			if lag := obs.lags[0]; lag < tc.retryAfter || lag > tc.retryAfter+time.Minute {
				t.Errorf("lag %s, want %s from the hold's release (the hold lasted 2h)", lag, tc.retryAfter)
			}
		})
	}
}
