package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A worker told to wait for one replica (REKEY_REDIS_WAIT_REPLICAS=1)
// mints, pushes and revokes only once the replica holds what made the step
// due. With the replica detached, a failover would lose the last writes:
// the step is not taken and the task is retried (a push's attempt is
// settled, since it never left). Attached again, the run goes on, and the
// replica, read as the issuer and Heroku are called, holds the rotation,
// its push attempt and the promotion that made the old credential due.
func TestNoStepThatCannotBeUndoneBeforeTheReplicaHoldsItsRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary, replica := redistest.StartReplicated(t)
	g := newRigOn(t, primary, []store.Option{store.WithDurability(1)})
	onReplica := store.New(replica.Client, g.seal)
	detach := func() {
		t.Helper()
		if err := replica.Client.Do(ctx, "replicaof", "no", "one").Err(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if info, _ := primary.Client.Info(ctx, "replication").Result(); strings.Contains(info, "connected_slaves:0") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the primary still counts its replica")
			}
		}
	}
	before, _ := g.st.Instance(ctx, "inst-1")
	// withReplica runs a task with the replica attached: a machine busy
	// with other tests may hold the replica's answer past the second a
	// wait has, which retrying answers, as asynq's retry would.
	withReplica := func(task *asynq.Task) error {
		for try := 1; ; try++ {
			err := g.run(task)
			if !errors.Is(err, store.ErrNotDurable) || try == 5 {
				return err
			}
		}
	}

	var mints, revokes atomic.Int32
	var detachAfterMint atomic.Bool
	g.overHandler(t, issuer.VerifyAuto, func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodPost && r.URL.Path == "/credentials":
				mints.Add(1)
				if _, err := onReplica.Rotation(ctx, "rot-1"); err != nil {
					t.Errorf("minted while the replica lacks the rotation: %v", err)
				}
				demo.ServeHTTP(w, r)
				if detachAfterMint.Load() {
					detach()
				}
			case r.Method == http.MethodDelete:
				revokes.Add(1)
				if c, err := onReplica.Credential(ctx, "inst-1", before.CurrentCredential); err != nil || c.State != store.CredentialPrevious {
					t.Errorf("revoked while the replica holds the credential as %q (%v), want previous", c.State, err)
				}
				demo.ServeHTTP(w, r)
			default:
				demo.ServeHTTP(w, r)
			}
		})
	})
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPatch(r) {
			if attempts, settled, err := onReplica.PushAttempts(ctx, "rot-1"); err != nil || attempts <= settled {
				t.Errorf("pushed while the replica holds %d attempts, %d settled (%v): want this one unsettled", attempts, settled, err)
			}
		}
		g.fake.ServeHTTP(w, r)
	}), 5*time.Second)

	// The mint waits for the claim.
	detach()
	err := g.run(rotateTask(t, "inst-1", "rot-1"))
	if !errors.Is(err, store.ErrNotDurable) || isPermanent(err) {
		t.Fatalf("run without the replica = %v, want a retry for store.ErrNotDurable", err)
	}
	if n := mints.Load(); n != 0 {
		t.Fatalf("%d mints without the replica, want none", n)
	}

	// The push waits for its attempt's record.
	redistest.AttachReplica(t, primary, replica)
	detachAfterMint.Store(true)
	err = g.run(rotateTask(t, "inst-1", "rot-1"))
	detachAfterMint.Store(false)
	if !errors.Is(err, store.ErrNotDurable) || isPermanent(err) {
		t.Fatalf("run that lost the replica after its mint = %v, want a retry for store.ErrNotDurable", err)
	}
	if n := g.pushes(); n != 0 {
		t.Fatalf("%d pushes without the replica, want none", n)
	}
	if attempts, settled, _ := g.st.PushAttempts(ctx, "rot-1"); attempts != settled {
		t.Fatalf("%d push attempts, %d settled: the push that never left must be settled", attempts, settled)
	}

	redistest.AttachReplica(t, primary, replica)
	if err := withReplica(rotateTask(t, "inst-1", "rot-1")); err != nil {
		t.Fatalf("run with the replica back: %v", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	if rot.State != store.RotationPromoted || g.configCredential(t, "inst-1") != rot.CredentialID {
		t.Fatalf("rotation %s, config holds %s; want promoted and %s", rot.State, g.configCredential(t, "inst-1"), rot.CredentialID)
	}
	if n := mints.Load(); n != 1 {
		t.Errorf("%d mints, want the one the rerun reloaded", n)
	}

	// The revocation waits for the promotion that made it due.
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	g.later.Store(int64(grace + time.Second))
	detach()
	if err := g.run(revoke); !errors.Is(err, store.ErrNotDurable) || isPermanent(err) {
		t.Fatalf("revoke without the replica = %v, want a retry for store.ErrNotDurable", err)
	}
	if n := revokes.Load(); n != 0 || !g.demo.Valid(before.CurrentCredential) {
		t.Fatalf("%d revocations without the replica, old credential valid %v; want none and valid", n, g.demo.Valid(before.CurrentCredential))
	}
	redistest.AttachReplica(t, primary, replica)
	if err := withReplica(revoke); err != nil {
		t.Fatalf("revoke with the replica back: %v", err)
	}
	if g.demo.Valid(before.CurrentCredential) {
		t.Error("old credential still valid after its revocation")
	}
}
