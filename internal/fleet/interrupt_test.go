package fleet_test

import (
	"context"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
)

// cancelingQueue cancels the request's context at its first enqueue, as
// an operator's Ctrl-C during `rekey rotate --all` does, and then passes
// the task on.
type cancelingQueue struct {
	q      *asynq.Client
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelingQueue) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	c.once.Do(c.cancel)
	return c.q.EnqueueContext(ctx, t, opts...)
}

// TestInterruptedRequestStillCountsItsBatch: a request whose context is
// cancelled after some claims still writes its batch's counts, so the
// rotations claimed are counted (and run, and finish the batch), and the
// instances never claimed count as skipped: the batch adds up to its total
// and can be done, and `rekey batches show --wait` does not hang.
func TestInterruptedRequestStillCountsItsBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// More claim chunks (100 each) than the producer runs at once (32): the
	// last ones start only after a chunk's enqueues, so after the cancel.
	ids := f.register(t, 3400)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := fleet.NewProducer(f.st, &cancelingQueue{q: f.queue, cancel: cancel})
	res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Queue: "default", Reason: "interrupted"})
	if err == nil {
		t.Fatal("a cancelled request reported no error")
	}
	if res.BatchID == "" {
		t.Fatalf("no batch: %v", err)
	}
	claimed := 0
	for _, id := range ids {
		in, err := f.st.Instance(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if in.InFlight != "" {
			claimed++
		}
	}
	if claimed == 0 || claimed == len(ids) {
		t.Fatalf("%d of %d instances claimed; the test wants the cancel to fall between claims", claimed, len(ids))
	}
	b, err := f.st.Batch(context.Background(), res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d claimed before the cancel; batch %+v", claimed, len(ids), b)
	if b.Enqueued != int64(claimed) || res.Enqueued != claimed {
		t.Errorf("batch counts %d enqueued, the result %d; %d rotations were claimed", b.Enqueued, res.Enqueued, claimed)
	}
	if b.Enqueued+b.Joined+b.Skipped != b.Total || b.Total != int64(len(ids)) {
		t.Errorf("the batch does not add up: %d enqueued + %d joined + %d skipped, total %d", b.Enqueued, b.Joined, b.Skipped, b.Total)
	}
}
