package handlers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/tasks"
)

// holdRaceRig is a rig whose revocations ask the issuer about usage, with
// the credential the instance held before one rotation, the revoke task
// of that credential, and the clock past its grace: two runs of that task
// can then be raced.
func holdRaceRig(t *testing.T) (g *rig, old string, revoke *asynq.Task) {
	t.Helper()
	g = newRig(t)
	g.deps.HoldStore = g.st
	g.deps.Holds = handlers.HoldPolicy{Quiet: 15 * time.Minute, Recheck: 10 * time.Minute, Max: 24 * time.Hour}
	before, _ := g.st.Instance(context.Background(), "inst-1")
	old = before.CurrentCredential
	if err := g.run(rotateTask(t, "inst-1", "rot_hold_race")); err != nil {
		t.Fatal(err)
	}
	revoke = g.enq.get(tasks.RevokeTaskID("inst-1", old))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	g.later.Store(int64(grace + time.Second))
	return g, old, revoke
}

// usageRaceIssuer answers the first usage question "in use", but only once
// the test lets it go; every later one "not used".
type usageRaceIssuer struct {
	issuer.Issuer
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (i *usageRaceIssuer) Usage(ctx context.Context, instanceID, credID string) (issuer.Usage, error) {
	if i.calls.Add(1) == 1 {
		i.entered <- struct{}{}
		<-i.release
		return issuer.Usage{LastUsedAt: time.Now().Add(2 * grace), LastUsedBy: "web.1"}, nil
	}
	return issuer.Usage{}, nil
}

// Two runs of one revoke task at once (I6: asynq is at-least-once; a run
// waiting up to 10 s on the usage question outlives a lost lease): one
// reads the credential as in use, the other reads it quiet and revokes it.
// The first saves no hold once the credential is revoked: it would never
// be released, and rekey would list a revocation as held (rekey holds, the
// dashboard, rekey_revocations_held and the oldest hold's age, which only
// grows) for a credential that is revoked.
func TestConcurrentRevokeRunsLeaveNoHoldOnARevokedCredential(t *testing.T) {
	t.Parallel()
	g, old, revoke := holdRaceRig(t)
	ctx := context.Background()
	iss := &usageRaceIssuer{Issuer: g.demo, entered: make(chan struct{}), release: make(chan struct{})}
	g.deps.Issuer = iss

	first := make(chan error, 1)
	go func() { first <- g.run(revoke) }()
	<-iss.entered
	if err := g.run(revoke); err != nil {
		t.Fatalf("second run: %v", err)
	}
	close(iss.release)
	if err := <-first; err != nil {
		t.Errorf("first run: %v, want nil: the credential it would hold is revoked", err)
	}
	// Were it asked to, asynq would run the first run's task again.
	if err := g.run(revoke); err != nil {
		t.Fatalf("run again: %v", err)
	}

	c, _ := g.st.Credential(ctx, "inst-1", old)
	if !c.Revoked() {
		t.Fatalf("credential %s not revoked (state %s)", old, c.State)
	}
	if _, held, _ := g.st.HoldOf(ctx, "inst-1", old); held {
		sum, _ := g.st.HoldStats(ctx)
		t.Fatalf("credential %s is revoked but its revocation is still listed as held (holds: %d, oldest since %s)",
			old, sum.Held, sum.Oldest.Format(time.RFC3339))
	}
}

// heldThenRevokedIssuer answers the first usage question "not used" and
// keeps that run at the issuer's DELETE until the test lets it go; every
// later usage question is answered "in use".
type heldThenRevokedIssuer struct {
	issuer.Issuer
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (i *heldThenRevokedIssuer) Usage(ctx context.Context, instanceID, credID string) (issuer.Usage, error) {
	if i.calls.Add(1) == 1 {
		return issuer.Usage{}, nil
	}
	return issuer.Usage{LastUsedAt: time.Now().Add(2 * grace), LastUsedBy: "web.1"}, nil
}

func (i *heldThenRevokedIssuer) Revoke(ctx context.Context, instanceID, credID string) error {
	i.entered <- struct{}{}
	<-i.release
	return i.Issuer.Revoke(ctx, instanceID, credID)
}

// The other order of two runs at once: one reads the credential quiet and
// is at the issuer's DELETE while the other reads it in use and holds it.
// The revocation then ends the hold: none is listed for a revoked
// credential.
func TestARevocationEndsTheHoldAnotherRunSaved(t *testing.T) {
	t.Parallel()
	g, old, revoke := holdRaceRig(t)
	ctx := context.Background()
	iss := &heldThenRevokedIssuer{Issuer: g.demo, entered: make(chan struct{}), release: make(chan struct{})}
	g.deps.Issuer = iss

	first := make(chan error, 1)
	go func() { first <- g.run(revoke) }()
	<-iss.entered
	if err := g.run(revoke); err == nil {
		t.Fatal("second run: nil, want it held")
	}
	if _, held, _ := g.st.HoldOf(ctx, "inst-1", old); !held {
		t.Fatal("second run saved no hold")
	}
	close(iss.release)
	if err := <-first; err != nil {
		t.Fatalf("first run: %v", err)
	}

	c, _ := g.st.Credential(ctx, "inst-1", old)
	if !c.Revoked() {
		t.Fatalf("credential %s not revoked (state %s)", old, c.State)
	}
	sum, _ := g.st.HoldStats(ctx)
	if _, held, _ := g.st.HoldOf(ctx, "inst-1", old); held || sum.Held != 0 {
		t.Fatalf("credential %s is revoked but its revocation is still listed as held (held %v, holds: %d)", old, held, sum.Held)
	}
}

// A hold an earlier version left on a credential revoked meanwhile (it
// saved holds unconditionally and did not mark them on their credential) is
// released by the next run of the credential's revoke task, which finds it
// revoked.
func TestARunOnARevokedCredentialReleasesALeftoverHold(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.deps.HoldStore = g.st
	g.deps.Holds = handlers.HoldPolicy{Quiet: 15 * time.Minute, Recheck: 10 * time.Minute, Max: 24 * time.Hour}
	ctx := context.Background()
	old, revoke := g.rotatedPastGrace(t, "rot_leftover")
	if err := g.run(revoke); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// What an earlier version's SaveHold wrote, after the revocation.
	now := time.Now().UnixMilli()
	if err := g.rdb.HSet(ctx, "rekey:hold:inst-1:"+old, "held_at", now, "checked_at", now).Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.rdb.ZAdd(ctx, "rekey:holds", redis.Z{Score: float64(now), Member: "inst-1/" + old}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.run(revoke); err != nil {
		t.Fatalf("run again: %v", err)
	}
	sum, _ := g.st.HoldStats(ctx)
	if _, held, _ := g.st.HoldOf(ctx, "inst-1", old); held || sum.Held != 0 {
		t.Fatalf("credential %s is revoked but its revocation is still listed as held (held %v, holds: %d)", old, held, sum.Held)
	}
}
