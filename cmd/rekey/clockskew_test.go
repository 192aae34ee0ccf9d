package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestSkewedWorkerKeepsTheGrace plays workers whose machines' clocks
// disagree by two hours: one promotes a rotation with a grace of one hour,
// the other takes the revoke task. Both are built by the production wiring
// (newAppOn, handlerDeps) over one real Redis, with the real store, the
// real revoke handler and the demo issuer. The old credential must stay
// valid until its revoke time on Redis's clock, and the early task must be
// put back without counting a failure; once the hour has passed, it is
// revoked.
func TestSkewedWorkerKeepsTheGrace(t *testing.T) {
	for _, tc := range []struct {
		name              string
		promoter, revoker time.Duration // each machine's clock against Redis's
	}{
		{"revoking worker two hours ahead", 0, 2 * time.Hour},
		{"promoting worker two hours behind", -2 * time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) { playSkew(t, tc.promoter, tc.revoker) })
	}
}

func playSkew(t *testing.T, promoterSkew, revokerSkew time.Duration) {
	c := newCLI(t)
	ctx := context.Background()
	cfg, err := loadConfig(c.env())
	if err != nil {
		t.Fatal(err)
	}
	// passed moves both machines' clocks on together, as time passing
	// would, without Redis's clock following (no measurement is taken
	// after the first).
	var passed atomic.Int64
	at := func(skew time.Duration) func() time.Time {
		return func() time.Time { return time.Now().Add(skew + time.Duration(passed.Load())) }
	}
	var promoterLog, revokerLog syncBuffer
	promoter, err := newAppOn(cfg, zerolog.New(&promoterLog), at(promoterSkew))
	if err != nil {
		t.Fatal(err)
	}
	defer promoter.Close()
	revoker, err := newAppOn(cfg, zerolog.New(&revokerLog), at(revokerSkew))
	if err != nil {
		t.Fatal(err)
	}
	defer revoker.Close()
	for _, a := range []*app{promoter, revoker} {
		if err := a.clockMeasured(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []struct {
		log  *syncBuffer
		skew time.Duration
	}{{&promoterLog, promoterSkew}, {&revokerLog, revokerSkew}} {
		if got := strings.Contains(w.log.String(), `"message":"clock_skew"`); got != (w.skew != 0) {
			t.Fatalf("clock_skew logged = %v by a worker %s off: %s", got, w.skew, w.log)
		}
	}

	demo := issuer.NewDemo()
	old, err := demo.Mint(ctx, "inst-1", "provision")
	if err != nil {
		t.Fatal(err)
	}
	next, err := demo.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	prev := promoteOn(t, promoter.store, old, next, time.Hour)
	if d := prev.RevokeAt.Sub(time.Now()); (d - time.Hour).Abs() > time.Second {
		t.Fatalf("revoke_at is %s from now, want the grace of 1h on Redis's clock", d)
	}

	hc, err := revoker.heroku(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Time passes here on the machines' clocks alone: a measurement before
	// the revocation would read Redis's clock, which does not follow, and
	// undo it. None is taken after the first, as said above.
	deps := revoker.handlerDeps(hc, demo, nil, nil)
	deps.Measure = nil
	mux, err := handlers.NewMux(deps)
	if err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-1", CredentialID: old.ID}, prev.RevokeAt)
	if err != nil {
		t.Fatal(err)
	}
	// asynq forwards the scheduled task by the skewed machine's clock,
	// two hours early: the handler puts it back, no failure counted.
	for _, elapsed := range []time.Duration{0, time.Hour - 2*time.Second} {
		passed.Store(int64(elapsed))
		err := mux.ProcessTask(ctx, task)
		var later *handlers.RetryLaterError
		if !errors.As(err, &later) || handlers.IsFailure(err) {
			t.Fatalf("after %s the revoke task returned %v, want a RetryLaterError that is no failure", elapsed, err)
		}
		if want := prev.RevokeAt.Sub(time.Now().Add(elapsed)); later.After < want-time.Second || later.After > want+time.Second {
			t.Fatalf("after %s the task waits %s more, want %s, until revoke_at", elapsed, later.After, want)
		}
		if !demo.Valid(old.ID) {
			t.Fatalf("after %s the old credential is revoked, %s before its revoke_at", elapsed, prev.RevokeAt.Sub(time.Now().Add(elapsed)))
		}
		if cred, err := revoker.store.Credential(ctx, "inst-1", old.ID); err != nil || cred.State != store.CredentialPrevious {
			t.Fatalf("after %s the old credential is %q (%v), want previous", elapsed, cred.State, err)
		}
	}

	passed.Store(int64(time.Hour + 2*time.Second))
	if err := mux.ProcessTask(ctx, task); err != nil {
		t.Fatalf("the revoke task once due: %v", err)
	}
	if demo.Valid(old.ID) {
		t.Fatal("the old credential is still valid after its revoke_at")
	}
	if cred, err := revoker.store.Credential(ctx, "inst-1", old.ID); err != nil || !cred.Revoked() {
		t.Fatalf("the old credential is %q (%v) after its revoke_at, want revoked", cred.State, err)
	}
}

// promoteOn registers inst-1 with old as its credential and rotates it to
// next through st, with grace; it returns the superseded credential.
func promoteOn(t *testing.T, st *store.Store, old, next issuer.Credential, grace time.Duration) store.Revocation {
	t.Helper()
	ctx := context.Background()
	if err := st.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: old.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePending(ctx, "inst-1", "rot-1", next.ID, next.Config); err != nil {
		t.Fatal(err)
	}
	prev, err := st.Promote(ctx, "inst-1", "rot-1", next.ID, grace, "")
	if err != nil {
		t.Fatal(err)
	}
	if prev == nil || prev.CredentialID != old.ID {
		t.Fatalf("the promotion superseded %+v, want %s", prev, old.ID)
	}
	return *prev
}

// An operator's laptop an hour behind Redis's clock holds a wave after a
// worker on the right clock held a scheduled rotation: the wave goes after
// it in the feeder's line, and the oldest held rotation is seconds old,
// not an hour (rekey_pace_oldest_held_seconds), both read on Redis's
// clock, as the production wiring (newAppOn) builds them.
func TestAWaveHeldFromASkewedMachineTakesItsPlaceOnRedissClock(t *testing.T) {
	c := newCLI(t)
	ctx := t.Context()
	cfg, err := loadConfig(c.env())
	if err != nil {
		t.Fatal(err)
	}
	apps := map[time.Duration]*app{}
	for _, skew := range []time.Duration{0, -time.Hour} {
		a, err := newAppOn(cfg, zerolog.Nop(), func() time.Time { return time.Now().Add(skew) })
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := a.clockMeasured(ctx); err != nil {
			t.Fatal(err)
		}
		apps[skew] = a
	}
	if err := apps[0].queue.Hold(ctx, "rot-scheduled"); err != nil {
		t.Fatal(err)
	}
	// Each process reads Redis's clock through an offset it measured, off by
	// up to that measurement's round trip (milliseconds, tens under -race on
	// a busy machine): holds further apart than that keep their order.
	time.Sleep(time.Second)
	if err := apps[-time.Hour].queue.HoldMany(ctx, []string{"rot-wave-1", "rot-wave-2"}); err != nil {
		t.Fatal(err)
	}
	rdb := apps[0].rdb
	ids, err := rdb.ZRange(ctx, "rekey:pace:held", 0, -1).Result() // the feeder's line, first first
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"rot-scheduled", "rot-wave-1", "rot-wave-2"}; !slices.Equal(ids, want) {
		t.Errorf("held in the order %v, want %v: the wave held last goes last", ids, want)
	}
	b, err := pacing.ReadBacklog(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	redisNow, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// So a hold may be dated a few milliseconds "in the future": that is the
	// measurement's error; an hour's skew is not.
	if age := redisNow.Sub(b.Oldest); age < -time.Second || age > 5*time.Second {
		t.Errorf("the oldest held rotation is %v old on Redis's clock, want a few milliseconds", age)
	}
}
