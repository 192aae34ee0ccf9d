package store_test

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
)

// A rotation of a cancelled batch that has not started yet (held for the
// feeder, or its task retrying, after the cancel looked) is cancelled when
// its task runs. A request for its instance meanwhile (a customer's
// button, the next wave) must not join it: it would be answered "joined"
// and never rotate. It starts a rotation of its own, and the cancelled
// batch's is recorded cancelled.
func TestClaimDoesNotJoinARotationOfACancelledBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.register(t, "inst-2", "cred-a")
	if err := f.st.CreateBatch(ctx, "bat-a", "wave", 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"inst-1", "inst-2"} {
		req := store.RotationRequest{InstanceID: id, RotationID: "rot-a-" + id, BatchID: "bat-a", Queue: "bulk"}
		if _, err := f.st.ClaimBrief(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.CancelBatch(ctx, "bat-a"); err != nil {
		t.Fatal(err)
	}
	one := mustClaim(t, f.st, "inst-1", "rot-b")
	many := f.st.ClaimMany(ctx, []store.RotationRequest{{InstanceID: "inst-2", RotationID: "rot-c"}})
	if many[0].Err != nil {
		t.Fatal(many[0].Err)
	}
	for rot, c := range map[string]store.Claim{"rot-b": one, "rot-c": many[0].Claim} {
		if c.Status != store.Claimed || c.RotationID != rot {
			t.Errorf("claim %s: %s of %s, want claimed", rot, c.Status, c.RotationID)
		}
	}
	for _, id := range []string{"inst-1", "inst-2"} {
		if r, _ := f.st.Rotation(ctx, "rot-a-"+id); r.State != store.RotationCancelled {
			t.Errorf("cancelled batch's rotation of %s is %q, want cancelled", id, r.State)
		}
	}
	if b, _ := f.st.Batch(ctx, "bat-a"); b.Cancelled != 2 {
		t.Errorf("batch counts %d cancelled, want 2", b.Cancelled)
	}
	if n, _ := f.st.InFlightCount(ctx); n != 2 {
		t.Errorf("%d rotations in flight, want the 2 new ones", n)
	}
}
