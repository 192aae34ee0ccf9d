package handlers_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A rotation id names one rotation of one instance. Another app's task that
// gives an id already used for another instance (a ticket number reused for
// every instance of an incident) must not resume, join or finish that
// rotation as if it were its own: it would push into the wrong instance a
// rotation the store records for the other, or be answered "already done"
// for an instance that never rotated.
func TestRotateRefusesARotationIDOfAnotherInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		first func(g *rig) error
	}{
		{"other rotation in flight", func(g *rig) error {
			_, err := g.st.Claim(context.Background(), store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_shared"})
			return err
		}},
		{"other rotation done", func(g *rig) error {
			return g.run(rotateTask(t, "inst-1", "rot_shared"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			g.provision(t, "inst-2", g.reg)
			ctx := context.Background()
			if err := tc.first(g); err != nil {
				t.Fatal(err)
			}
			before, _ := g.st.Rotation(ctx, "rot_shared")
			err := g.run(rotateTask(t, "inst-2", "rot_shared"))
			if !isPermanent(err) {
				t.Errorf("inst-2's task with inst-1's rotation id: err = %v, want a permanent error", err)
			}
			if n := g.fake.ConfigChanges("inst-2"); n != 0 {
				t.Errorf("inst-2's Heroku config changed %d times under inst-1's rotation id", n)
			}
			after, _ := g.st.Rotation(ctx, "rot_shared")
			if after.InstanceID != "inst-1" || after.State != before.State || after.CredentialID != before.CredentialID {
				t.Errorf("inst-1's rotation: %+v before inst-2's task, %+v after", before, after)
			}
			// inst-1's own task still rotates inst-1.
			if err := g.run(rotateTask(t, "inst-1", "rot_shared")); err != nil {
				t.Fatalf("inst-1's task: %v", err)
			}
			if n := g.fake.ConfigChanges("inst-1"); n != 1 {
				t.Errorf("inst-1's Heroku config changes: %d, want 1", n)
			}
		})
	}
}

// A task whose ids no claim can take (written by another app's own code,
// not NewRotateTask) is archived at its first run: retried, it would only
// fail the same way for hours.
func TestRotateArchivesUnusableIDs(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	for _, payload := range []string{
		`{"instance_id":"inst-1:x","rotation_id":"rot_u1"}`,
		`{"instance_id":"inst-1","rotation_id":"rot u2"}`,
	} {
		err := g.run(asynq.NewTask(tasks.TypeRotate, []byte(payload)))
		if !isPermanent(err) || !errors.Is(err, tasks.ErrInvalidPayload) {
			t.Errorf("%s: err = %v, want a permanent ErrInvalidPayload", payload, err)
		}
	}
}

// A rotation claimed before its instance was deprovisioned (a wave's held
// rotation, released hours later) must not mint a credential for it or
// call Heroku when its task runs: the partner said the add-on is gone. It
// ends, and the instance has nothing in flight. (One a run had started may
// have been minted, its answer lost: deprovisionedmint_test.go.)
func TestRotateOfAnInstanceDeprovisionedSinceItsClaimEnds(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_dep", Queue: tasks.QueueBulk}); err != nil {
		t.Fatal(err)
	}
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	mints, calls := g.demo.Stats().MintCalls, g.fake.Stats().Total
	err := g.run(rotateTask(t, "inst-1", "rot_dep"))
	if !isPermanent(err) {
		t.Errorf("err = %v, want a permanent error", err)
	}
	if n := g.demo.Stats().MintCalls - mints; n != 0 {
		t.Errorf("issuer mint calls for a deprovisioned instance: %d", n)
	}
	if n := g.fake.Stats().Total - calls; n != 0 {
		t.Errorf("Heroku calls for a deprovisioned instance: %d", n)
	}
	if rot, _ := g.st.Rotation(ctx, "rot_dep"); rot.State != store.RotationFailed {
		t.Errorf("rotation state %q, want failed", rot.State)
	}
	if in, _ := g.st.Instance(ctx, "inst-1"); in.InFlight != "" {
		t.Errorf("instance still has rotation %s in flight", in.InFlight)
	}
}

// One that had minted its credential already discards it, and its
// revocation is scheduled (I3).
func TestRotateOfAnInstanceDeprovisionedAfterMintDiscardsItsCredential(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	if _, err := g.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_dep2"}); err != nil {
		t.Fatal(err)
	}
	cred, err := g.demo.Mint(ctx, "inst-1", "rot_dep2")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.st.SavePending(ctx, "inst-1", "rot_dep2", cred.ID, cred.Config); err != nil {
		t.Fatal(err)
	}
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if err := g.run(rotateTask(t, "inst-1", "rot_dep2")); !isPermanent(err) {
		t.Errorf("err = %v, want a permanent error", err)
	}
	if c, _ := g.st.Credential(ctx, "inst-1", cred.ID); c.State != store.CredentialDiscarded {
		t.Errorf("minted credential is %q, want discarded", c.State)
	}
	if g.enq.get(tasks.RevokeTaskID("inst-1", cred.ID)) == nil {
		t.Error("no revoke task for the discarded credential")
	}
}
