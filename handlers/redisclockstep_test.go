package handlers_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/redisclock"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// steppedRedis answers TIME as the real Redis does, step later: the host
// of Redis had its clock stepped ahead (a wrong NTP source, a failover to
// a replica whose clock is off) after the revoke times were written.
type steppedRedis struct {
	rdb  *redis.Client
	step time.Duration
}

func (s steppedRedis) Time(ctx context.Context) *redis.TimeCmd {
	at, err := s.rdb.Time(ctx).Result()
	return redis.NewTimeCmdResult(at.Add(s.step), err)
}

// Redis's clock steps an hour and a minute ahead once a rotation has set
// its previous credential's revoke time an hour on. The worker, whose own
// machine keeps the right time, measures Redis's clock again (as it does
// every 30 s) and takes the revoke task, which the sweep enqueues as due by
// the corrected clock: the credential, which the customer's apps may still
// run on for the hour of grace left, must not be revoked until the
// worker's own clock has passed the revoke time too (I2).
func TestRevokeWaitsOutARedisClockSteppedAhead(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	oldID, revoke := rotatedWithRevoke(t, g)
	old, err := g.st.Credential(context.Background(), "inst-1", oldID)
	if err != nil || old.State != store.CredentialPrevious {
		t.Fatalf("old credential %q (%v), want previous", old.State, err)
	}

	step := grace + time.Minute
	clock := measuredClock(t, steppedRedis{rdb: g.rdb, step: step}, nil)
	g.deps.Now, g.deps.Local = clock.Now, time.Now

	err = g.run(revoke)
	var later *handlers.RetryLaterError
	if !errors.As(err, &later) || handlers.IsFailure(err) {
		t.Fatalf("revoke task on a Redis clock stepped %s ahead returned %v, want a RetryLaterError that is no failure", step, err)
	}
	if want := old.RevokeAt.Sub(time.Now()); later.After < want-time.Minute || later.After > want+time.Second {
		t.Errorf("the task waits %s more, want about %s, until revoke_at on this machine's clock", later.After, want)
	}
	if !g.demo.Valid(old.ID) {
		t.Fatalf("old credential revoked %s before its revoke_at, on a Redis clock stepped %s ahead (I2)",
			old.RevokeAt.Sub(time.Now()).Round(time.Second), step)
	}

	// Once the machine's clock too has passed the revoke time, it goes.
	g.deps.Local = func() time.Time { return time.Now().Add(step) }
	if err := g.run(revoke); err != nil {
		t.Fatalf("revoke once both clocks passed revoke_at: %v", err)
	}
	if g.demo.Valid(old.ID) {
		t.Fatal("old credential still valid once both clocks passed its revoke_at")
	}
}

// A "revoke now" on a Redis clock stepped ahead moves the revoke time to
// Redis's now, ahead of this machine's clock: it is revoked at once, not
// when the machine's clock catches up with the step.
func TestAnExpediteOnARedisClockSteppedAheadRevokesAtOnce(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	oldID, revoke := rotatedWithRevoke(t, g)
	clock := measuredClock(t, steppedRedis{rdb: g.rdb, step: grace + time.Minute}, nil)
	g.deps.Now, g.deps.Local = clock.Now, time.Now
	web := store.New(g.rdb, g.seal, store.WithClock(clock.Now))
	if _, err := web.ExpediteRevocation(context.Background(), "inst-1", oldID, store.ExpeditedByCustomer); err != nil {
		t.Fatal(err)
	}
	if err := g.run(revoke); err != nil {
		t.Fatalf("expedited revoke on a Redis clock stepped ahead: %v", err)
	}
	if g.demo.Valid(oldID) {
		t.Fatal("expedited credential still valid")
	}
}

// The worker's own machine has its clock stepped an hour and a minute
// ahead (a wrong NTP source) between two measurements of Redis's clock.
// asynq, forwarding by that clock, hands the worker the revoke task an
// hour early, and both the machine's clock and the corrected one (the
// machine's plus the offset measured before the step) read its revoke time
// as passed until the next measurement, up to 30 s on. The worker measures
// Redis's clock again before it revokes, and waits (I2).
func TestRevokeWaitsOutTheMachinesClockSteppedAheadBetweenMeasurements(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	oldID, revoke := rotatedWithRevoke(t, g)
	var step atomic.Int64
	local := func() time.Time { return time.Now().Add(time.Duration(step.Load())) }
	clock := measuredClock(t, g.rdb, local)
	g.deps.Now, g.deps.Local = clock.Now, local
	g.deps.Measure = func(ctx context.Context) error { _, err := clock.Measure(ctx); return err }
	step.Store(int64(grace + time.Minute)) // before the next measurement

	err := g.run(revoke)
	var later *handlers.RetryLaterError
	if !errors.As(err, &later) || handlers.IsFailure(err) {
		t.Fatalf("revoke task on a machine clock stepped %s ahead returned %v, want a RetryLaterError that is no failure",
			time.Duration(step.Load()), err)
	}
	if !g.demo.Valid(oldID) {
		t.Fatal("old credential revoked an hour before its revoke_at, on a machine clock stepped ahead (I2)")
	}
}

// The worker's own machine has its clock stepped an hour back (NTP
// correcting a clock that ran ahead) between two measurements of Redis's
// clock, and a rotation promotes meanwhile: the corrected clock reads an
// hour behind Redis's until the next measurement, and the revoke time
// written from it, now + grace, fell an hour early, when every other
// worker revoked the old credential. The worker measures Redis's clock
// again before it promotes.
func TestPromoteOnTheMachinesClockSteppedBackKeepsTheGrace(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := context.Background()
	var step atomic.Int64
	local := func() time.Time { return time.Now().Add(time.Duration(step.Load())) }
	clock := measuredClock(t, r.Client, local)
	g := newRigOn(t, r, []store.Option{store.WithClock(clock.Now)})
	g.deps.Now, g.deps.Local = clock.Now, local
	g.deps.Measure = func(ctx context.Context) error { _, err := clock.Measure(ctx); return err }
	before, _ := g.st.Instance(ctx, "inst-1")
	step.Store(int64(-time.Hour)) // before the next measurement

	if err := g.run(rotateTask(t, "inst-1", "rot_back")); err != nil {
		t.Fatal(err)
	}
	old, err := g.st.Credential(ctx, "inst-1", before.CurrentCredential)
	if err != nil || old.State != store.CredentialPrevious {
		t.Fatalf("old credential %q (%v), want previous", old.State, err)
	}
	if left := old.RevokeAt.Sub(time.Now()); left < grace-time.Minute {
		t.Fatalf("revoke_at is %s from now on Redis's clock, want the grace of %s (I2)", left.Round(time.Second), grace)
	}
}

// rotatedWithRevoke runs a rotation of inst-1 on g and returns the id of
// the credential it superseded and that credential's revoke task.
func rotatedWithRevoke(t *testing.T, g *rig) (string, *asynq.Task) {
	t.Helper()
	before, _ := g.st.Instance(context.Background(), "inst-1")
	if err := g.run(rotateTask(t, "inst-1", "rot_step")); err != nil {
		t.Fatal(err)
	}
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	return before.CurrentCredential, revoke
}

// measuredClock is a clock on src's TIME, read by local (nil: time.Now),
// measured once.
func measuredClock(t *testing.T, src redisclock.Source, local func() time.Time) *redisclock.Clock {
	t.Helper()
	clock, err := redisclock.New(redisclock.Params{Redis: src, Local: local})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clock.Measure(context.Background()); err != nil {
		t.Fatal(err)
	}
	return clock
}
