package fleet_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
)

// benchFleet is how many rotations one benchmark iteration requests.
const benchFleet = 10_000

// BenchmarkProducerRotate requests a rotation of 10,000 registered
// instances: check, batch, claim and enqueue each, as `rekey rotate --all`
// does. Compare rotations/s with BenchmarkRawEnqueue.
func BenchmarkProducerRotate(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	p := fleet.NewProducer(f.st, f.queue)
	for range b.N {
		b.StopTimer()
		if err := f.r.Client.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		ids := f.register(b, benchFleet)
		b.StartTimer()
		res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "bench", Queue: "bulk"})
		if err != nil {
			b.Fatal(err)
		}
		if res.Enqueued != benchFleet {
			b.Fatalf("enqueued %d of %d", res.Enqueued, benchFleet)
		}
	}
	b.ReportMetric(float64(benchFleet*b.N)/b.Elapsed().Seconds(), "rotations/s")
}

// BenchmarkRawEnqueue enqueues 10,000 trivial tasks from 32 goroutines on
// one asynq client: the ceiling BenchmarkProducerRotate is measured against.
func BenchmarkRawEnqueue(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		if err := f.r.Client.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		next := make(chan int)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for i := range next {
					t := asynq.NewTask("bench:noop", nil, asynq.Queue("bulk"), asynq.TaskID(fmt.Sprintf("noop:%d", i)))
					if _, err := f.queue.EnqueueContext(ctx, t); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for i := range benchFleet {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	b.ReportMetric(float64(benchFleet*b.N)/b.Elapsed().Seconds(), "rotations/s")
}
