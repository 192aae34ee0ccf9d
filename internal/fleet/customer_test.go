package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A customer's request that starts no rotation of its own (a limit
// refused it at the claim, or it joined the rotation under way) leaves no
// batch: a click that the dashboard's own check let through, racing
// another, must not leave a batch kept 30 days; and a customer's join
// writes no "joined" event to the fleet stream.
func TestACustomerRequestThatStartsNothingLeavesNoBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	ids := f.register(t, 1)
	p := fleet.NewProducer(f.st, f.queue)
	limits := store.CustomerLimits{PerDay: 1}
	click := func() fleet.Result {
		t.Helper()
		res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "customer request",
			Queue: tasks.QueueInteractive, Customer: &limits})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := click()
	if first.Enqueued != 1 {
		t.Fatalf("first click: %+v, want a rotation enqueued", first)
	}
	// The operator's request joins; then a customer's joins too.
	if _, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "incident"}); err != nil {
		t.Fatal(err)
	}
	if res := click(); res.Joined != 1 {
		t.Fatalf("click while the rotation runs: %+v, want joined", res)
	}
	rot := first.Items[0].RotationID
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:p@db/x?cred=cred-1")}
	if err := f.st.SavePending(ctx, ids[0], rot, "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, ids[0], rot, "cred-1", time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	if res := click(); res.Refused != 1 || res.Items[0].Refused.Reason != store.RefusedCustomerDaily {
		t.Fatalf("click past the day's limit: %+v, want refused by the daily limit", res)
	}
	batches, err := f.st.Batches(ctx, store.BatchQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 {
		t.Errorf("%d batches: %+v; want 2, the first click's and the operator's", len(batches), batches)
	}
	events, err := f.st.FleetEvents(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	joins := 0
	for _, e := range events {
		if e.Type == store.EventJoined {
			joins++
		}
	}
	if joins != 1 {
		t.Errorf("%d joined events in the fleet stream, want the operator's only", joins)
	}
}
