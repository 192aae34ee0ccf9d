package web_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A partner's client polls a batch until it is done. A batch whose
// instances were all rotating already joined their rotations: it is done
// when they finish (promoted, failed or cancelled), not at once with
// nothing rotated yet.
func TestABatchOfJoinsIsDoneWhenTheRotationsItJoinedAre(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := []string{"inst-1", "inst-2", "inst-3"}
	for _, id := range ids {
		f.register(id, "cred-0")
	}
	var first, joins batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1","inst-2","inst-3"],"reason":"first"}`).json(t, &first)
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1","inst-2","inst-3"],"reason":"again"}`).json(t, &joins)
	if first.Enqueued != 3 || joins.Joined != 3 {
		t.Fatalf("got %+v then %+v, want 3 enqueued then 3 joined", first, joins)
	}
	batch := func(id string) batchJSON {
		var b batchJSON
		f.api(http.MethodGet, "/api/v1/batches/"+id, "").json(t, &b)
		return b
	}
	inflight := func(id string) string {
		in, err := f.st.Instance(ctx, id)
		if err != nil || in.InFlight == "" {
			t.Fatalf("%s: %+v, %v; want a rotation in flight", id, in, err)
		}
		return in.InFlight
	}
	if b := batch(joins.BatchID); b.Done || b.InFlight != 3 {
		t.Errorf("batch of joins before anything finished: %+v, want 3 in flight, not done", b)
	}

	// One promoted.
	rot := inflight("inst-1")
	cfg := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret + "?cred=cred-1")}
	if err := f.st.SavePending(ctx, "inst-1", rot, "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, "inst-1", rot, "cred-1", time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	// One failed.
	if _, err := f.st.FailRotation(ctx, "inst-2", inflight("inst-2"), store.Failure{Code: "mint:test", Cause: "the test failed it"}); err != nil {
		t.Fatal(err)
	}
	if b := batch(joins.BatchID); b.Done || b.InFlight != 1 {
		t.Errorf("batch of joins with one rotation left: %+v, want 1 in flight, not done", b)
	}
	// A batch cancelled no longer waits for the rotations it joined.
	var third batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-3"],"reason":"third"}`).json(t, &third)
	if b := batch(third.BatchID); third.Joined != 1 || b.Done {
		t.Fatalf("a third batch joining inst-3: %+v, %+v; want it joined and waiting", third, b)
	}
	if _, err := fleet.Cancel(ctx, f.st, f.insp, third.BatchID); err != nil {
		t.Fatal(err)
	}
	if b := batch(third.BatchID); !b.Done || b.InFlight != 0 {
		t.Errorf("cancelled batch of a join: %+v, want done", b)
	}
	if b := batch(joins.BatchID); b.Done || b.InFlight != 1 {
		t.Errorf("batch of joins after another batch was cancelled: %+v, want 1 in flight", b)
	}
	// Cancelling the last one's own batch leaves it to the batch of joins,
	// not cancelled, which waits for it.
	last := inflight("inst-3")
	if _, err := fleet.Cancel(ctx, f.st, f.insp, first.BatchID); err != nil {
		t.Fatal(err)
	}
	if b := batch(joins.BatchID); b.Done || b.InFlight != 1 {
		t.Errorf("batch of joins after the joined batch was cancelled: %+v, want 1 in flight", b)
	}
	if r, err := f.st.Rotation(ctx, last); err != nil || r.State != store.RotationRequested {
		t.Errorf("rotation the batch of joins waits for: %+v, %v; want it still requested", r, err)
	}
	// Once that batch is cancelled too, nothing waits for it: its task's
	// claim (here the first batch's cancel, run again) cancels it.
	for _, id := range []string{joins.BatchID, first.BatchID} {
		if _, err := fleet.Cancel(ctx, f.st, f.insp, id); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := f.st.Rotation(ctx, last); err != nil || r.State != store.RotationCancelled {
		t.Errorf("rotation once every batch waiting for it was cancelled: %+v, %v; want it cancelled", r, err)
	}
	if b := batch(joins.BatchID); !b.Done || b.InFlight != 0 {
		t.Errorf("batch of joins once every rotation it joined finished: %+v, want done", b)
	}
	if b := batch(first.BatchID); !b.Done || b.InFlight != 0 {
		t.Errorf("the joined batch: %+v, want done, its outcomes its own", b)
	}
}
