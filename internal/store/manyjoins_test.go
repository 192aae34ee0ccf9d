package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A rotation notes the first batches that join it (joined_by, 1024
// bytes); one that many batches joined (an operator's scripted retries, an
// incident's requests) must still keep a later batch waiting: the
// operator's batch answered done while its rotation runs would let them go
// on too early. Nor may a cancel of the rotation's own batch end it while
// that later batch waits.
func TestABatchWaitsForARotationManyBatchesJoined(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	if err := f.st.CreateBatch(ctx, "bat-own", "wave", 1); err != nil {
		t.Fatal(err)
	}
	rot := "rot-own"
	if _, err := f.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: rot, BatchID: "bat-own", Queue: "bulk"}); err != nil {
		t.Fatal(err)
	}
	join := func(batch string) {
		t.Helper()
		if err := f.st.CreateBatch(ctx, batch, "again", 1); err != nil {
			t.Fatal(err)
		}
		c, err := f.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-" + batch, BatchID: batch, Queue: "default"})
		if err != nil || c.Status != store.Joined {
			t.Fatalf("claim of %s: %+v, %v; want joined", batch, c, err)
		}
		if err := f.st.CountBatch(ctx, batch, 0, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("bat_%026d", i))
		join(many[i])
	}
	join("bat-late")
	late := func() store.Batch {
		t.Helper()
		b, err := f.st.Batch(ctx, "bat-late")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := late(); b.Done || b.InFlight != 1 {
		t.Errorf("batch that joined a rotation 40 batches joined before: in_flight %d, done %v; want 1, not done", b.InFlight, b.Done)
	}
	running, err := f.st.Batches(ctx, store.BatchQuery{Limit: 100, Running: true})
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, b := range running {
		listed = listed || (b.ID == "bat-late" && !b.Done && b.InFlight == 1)
	}
	if !listed {
		t.Errorf("batches --running (%d listed) does not list bat-late in flight", len(running))
	}
	// The wave's batch and every batch the rotation notes are cancelled:
	// the rotation stays for bat-late.
	for _, id := range append(many, "bat-own") {
		if err := f.st.CancelBatch(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := f.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: rot, BatchID: "bat-own", Queue: "bulk"}); err != nil || c.Status != store.Resumed {
		t.Fatalf("claim of the cancelled wave's rotation: %+v, %v; want it resumed, kept for the batches that joined", c, err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:p@db/x?cred=cred-1")}
	if err := f.st.SavePending(ctx, "inst-1", rot, "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if b := late(); b.Done || b.InFlight != 1 {
		t.Errorf("batch while the rotation it joined is minted: in_flight %d, done %v; want 1, not done", b.InFlight, b.Done)
	}
	if _, err := f.st.Promote(ctx, "inst-1", rot, "cred-1", time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	if b := late(); !b.Done || b.InFlight != 0 {
		t.Errorf("batch once the rotation it joined was promoted: in_flight %d, done %v; want done", b.InFlight, b.Done)
	}
	// A rotation stays bounded however many batches join it: its list of
	// joined batches keeps to its 1024 bytes, and no field is added per
	// batch. (MEMORY USAGE is no measure here: it samples a hash that long
	// fields turned into a hash table, and varies with the allocator.)
	key := "rekey:rotation:" + rot
	by, err := f.r.Client.HStrLen(ctx, key, "joined_by").Result()
	if err != nil {
		t.Fatal(err)
	}
	fields, err := f.r.Client.HLen(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if by == 0 || by >= 1024 || fields > 30 {
		t.Errorf("after 41 batches joined, the rotation's joined_by holds %d bytes and it has %d fields; want under 1024 and a handful", by, fields)
	}
}
