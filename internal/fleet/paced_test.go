package fleet_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/tasks"
)

// With a pacing client, a bulk request's tasks are held for the feeder
// (scheduled, their rotations in the held set) after their claims; a
// cancelled batch's held tasks are removed so they spend no budget.
func TestBulkRotationsAreHeldAndCancelRemovesThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 20)
	p := fleet.NewProducer(f.st, pacing.NewClient(f.queue, f.r.Client))
	res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "test", Queue: tasks.QueueBulk})
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(f.r.Client)
	for _, it := range res.Items {
		info, err := insp.GetTaskInfo(tasks.QueueBulk, tasks.RotateTaskID(it.RotationID))
		if err != nil {
			t.Fatal(err)
		}
		if info.State != asynq.TaskStateScheduled || time.Until(info.NextProcessAt) < pacing.HoldFor-time.Minute {
			t.Errorf("rotation %s: task %s at %s, want held (scheduled about %s ahead)", it.RotationID, info.State, info.NextProcessAt, pacing.HoldFor)
		}
	}
	if n, err := pacing.Held(ctx, f.r.Client); err != nil || n != 20 {
		t.Errorf("%d rotations held (%v), want 20", n, err)
	}
	// A single rotation is interactive and never held.
	one, err := p.Rotate(ctx, fleet.Request{InstanceIDs: []string{instanceID(0)}, Reason: "test"})
	if err != nil || one.Joined != 1 {
		t.Fatalf("single rotation of a rotating instance: %+v, %v; want it joined", one, err)
	}
	removed, err := fleet.Cancel(ctx, f.st, insp, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 20 {
		t.Errorf("cancel removed %d held tasks, want 20", removed)
	}
	if qi, err := insp.GetQueueInfo(tasks.QueueBulk); err != nil || qi.Scheduled != 0 {
		t.Errorf("bulk queue after cancel: %+v, %v; want no scheduled task", qi, err)
	}
	// Their ids leave the held set too: the feeder would take a token for
	// each before finding its task gone, and the next wave wait behind them.
	if n, err := pacing.Held(ctx, f.r.Client); err != nil || n != 0 {
		t.Errorf("%d rotations still held after cancel (%v), want 0", n, err)
	}
}

var pacedFleet = flag.Int("paced-fleet", 100_000, "BenchmarkProducerRotatePaced: how many instances to rotate")

// BenchmarkProducerRotatePaced requests a rotation of 100,000 instances on
// the bulk queue through the pacing client, as `rekey rotate --all` does:
// every claim, then every task held for the feeder.
func BenchmarkProducerRotatePaced(b *testing.B) {
	n := *pacedFleet
	f := newFixture(b)
	ctx := context.Background()
	p := fleet.NewProducer(f.st, pacing.NewClient(f.queue, f.r.Client))
	for range b.N {
		b.StopTimer()
		if err := f.r.Client.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		ids := f.register(b, n)
		b.StartTimer()
		start := time.Now()
		res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "bench", Queue: tasks.QueueBulk})
		if err != nil {
			b.Fatal(err)
		}
		if res.Enqueued != n {
			b.Fatalf("enqueued %d of %d", res.Enqueued, n)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/request")
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rotations/s")
}
