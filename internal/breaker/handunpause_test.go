package breaker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An open breaker stays open until `rekey breaker resume`. When the bulk
// queue runs meanwhile anyway (an operator unpaused it with asynq's CLI, or
// the pause at the opening failed on a Redis blip), the wave's next
// denials must pause it again: otherwise the rest of the wave runs into
// the same 401s, one instance at a time, while `rekey scheduler status`
// still says the breaker holds it.
func TestDenialsWhileOpenPauseABulkQueueUnpausedByHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, store.BreakerPolicy{Threshold: 2, Fraction: 1, Window: time.Minute})
	g.b.Observe(ctx, "a", denied(401))
	g.b.Observe(ctx, "b", denied(401))
	if !g.paused(t, tasks.QueueBulk) {
		t.Fatal("the breaker did not pause the bulk queue when it opened")
	}
	if err := g.insp.UnpauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		g.b.Observe(ctx, fmt.Sprintf("c-%d", i), denied(401))
	}
	s, err := g.b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Open || !s.BulkPaused {
		t.Fatalf("after 3 more 401s with the breaker open: open %v, bulk paused %v; want the bulk queue paused again", s.Open, s.BulkPaused)
	}
}

// A plain answer while the breaker is open says nothing new of the
// account: it pauses nothing, so an operator who unpaused the queue to let
// a wave through a recovered Heroku is not overruled by its successes.
func TestSuccessesWhileOpenLeaveAHandUnpausedQueueRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, store.BreakerPolicy{Threshold: 2, Fraction: 1, Window: time.Minute})
	g.b.Observe(ctx, "a", denied(401))
	g.b.Observe(ctx, "b", denied(401))
	if err := g.insp.UnpauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
	g.b.Observe(ctx, "c", nil)
	if g.paused(t, tasks.QueueBulk) {
		t.Fatal("a 2xx paused the bulk queue again")
	}
}
