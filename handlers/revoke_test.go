package handlers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// The revoke task waits for revoke_at (I2), then revokes, and is a no-op
// when it runs again.
func TestRevokeWaitsForRevokeTime(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")
	if err := g.run(rotateTask(t, "inst-1", "rot_r")); err != nil {
		t.Fatal(err)
	}
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
	if revoke == nil {
		t.Fatal("no revoke task")
	}

	err := g.run(revoke)
	var later *handlers.RetryLaterError
	if !errors.As(err, &later) || later.After < grace-time.Minute {
		t.Fatalf("early revoke: err = %v, want to wait about %s", err, grace)
	}
	// It names the revoke time it waits for, which the sweep compares with
	// the revocation's, should an expedite bring it forward meanwhile.
	if c, _ := g.st.Credential(ctx, "inst-1", before.CurrentCredential); !later.Until.Equal(c.RevokeAt) {
		t.Errorf("early revoke waits until %s, want the revoke time %s", later.Until, c.RevokeAt)
	}
	if !g.demo.Valid(before.CurrentCredential) {
		t.Fatal("credential revoked before its revoke_at (I2)")
	}

	g.later.Store(int64(grace + time.Second))
	for range 2 {
		if err := g.run(revoke); err != nil {
			t.Fatalf("revoke after revoke_at: %v", err)
		}
	}
	c, _ := g.st.Credential(ctx, "inst-1", before.CurrentCredential)
	if g.demo.Valid(c.ID) || c.State != store.CredentialRevoked {
		t.Errorf("after revoke_at: issuer valid %v, state %s; want revoked", g.demo.Valid(c.ID), c.State)
	}
	if n, _ := g.st.PendingRevocations(ctx); n != 0 {
		t.Errorf("pending revocations: %d, want 0", n)
	}
}

// The current credential is never revoked (I1), whatever a task says; and
// should the revocations due list it (an index out of step), the entry
// goes with the task, or the sweep would enqueue it at every pass.
func TestRevokeRefusesCurrentCredential(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	in, _ := g.st.Instance(ctx, "inst-1")
	member := "inst-1/" + in.CurrentCredential
	if err := g.st.Redis().ZAdd(ctx, "rekey:revoke_due", redis.Z{Score: 1, Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-1", CredentialID: in.CurrentCredential}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Dropped, not archived: an archived task would keep the id of the
	// credential's own revoke task once it is superseded.
	if err := g.run(task); !errors.Is(err, asynq.RevokeTask) {
		t.Fatalf("revoking the current credential: err = %v, want the task dropped (asynq.RevokeTask)", err)
	}
	if !g.demo.Valid(in.CurrentCredential) {
		t.Error("current credential revoked (I1)")
	}
	if err := g.st.Redis().ZScore(ctx, "rekey:revoke_due", member).Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("the current credential is still listed as due (%v)", err)
	}
}

// A revocation still listed as due whose credential record is gone
// (evicted, restored in part) is neither revoked blindly nor dropped: its
// task is refused for good, for the sweep to set it aside as dead, and the
// entry stays, since the credential may still work at the issuer (I3).
func TestRevokeOfAGoneRecordKeepsItsDueEntry(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	member := "inst-1/cred-gone"
	if err := g.st.Redis().ZAdd(ctx, "rekey:revoke_due", redis.Z{Score: 1, Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-1", CredentialID: "cred-gone"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.run(task); !isPermanent(err) || errors.Is(err, asynq.RevokeTask) {
		t.Fatalf("revoking a credential whose record is gone: err = %v, want a permanent refusal, not a drop", err)
	}
	if err := g.st.Redis().ZScore(ctx, "rekey:revoke_due", member).Err(); err != nil {
		t.Errorf("the due entry of a credential whose record is gone was dropped (%v)", err)
	}
}
