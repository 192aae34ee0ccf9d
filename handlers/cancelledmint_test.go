package handlers_test

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestACancelAfterAMintWhoseAnswerWasLostLeavesNoCredentialUnknown: a
// wave's rotation runs, the issuer mints its credential and the answer
// never comes back (a gateway's 504 after the issuer's write); the task
// waits for its retry, and the operator cancels the batch. The retry's
// claim cancelled the rotation as one that had not started: nothing asked
// the issuer again, and the credential it had minted stayed valid, named
// by no record of rekey's, never revoked (I3). A rotation a run started is
// under way: it finishes, its mint answered again with the same credential.
func TestACancelAfterAMintWhoseAnswerWasLostLeavesNoCredentialUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	lost, _ := lostMints(t, g, false) // the id the issuer minted, whose answer was lost
	if err := g.st.CreateBatch(ctx, "bat-c", "wave", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-c", BatchID: "bat-c"}); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot-c", BatchID: "bat-c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.run(task); err == nil || isPermanent(err) {
		t.Fatalf("first run = %v, want a retryable error", err)
	}
	id, _ := lost.Load().(string)
	if id == "" || !g.demo.Valid(id) {
		t.Fatalf("the issuer minted nothing valid (%q)", id)
	}
	if _, err := fleet.Cancel(ctx, g.st, nil, "bat-c"); err != nil {
		t.Fatal(err)
	}
	_ = g.run(task) // the retry
	rot, _ := g.st.Rotation(ctx, "rot-c")
	c, err := g.st.Credential(ctx, "inst-1", id)
	if err != nil {
		t.Fatalf("rotation %s; credential %s minted for it: %v (the issuer honours it: %v); want it recorded, current or due for revocation",
			rot.State, id, err, g.demo.Valid(id))
	}
	due := c.State == store.CredentialDiscarded || c.State == store.CredentialPrevious
	if c.State != store.CredentialCurrent && !(due && !c.RevokeAt.IsZero()) {
		t.Errorf("rotation %s; credential %s is %s, revoke at %v; want current, or due for revocation", rot.State, id, c.State, c.RevokeAt)
	}
}
