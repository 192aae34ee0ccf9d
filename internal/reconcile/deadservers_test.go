package reconcile_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A worker process that dies without shutting down (killed, out of
// memory, its dyno lost) leaves its asynq servers' heartbeat entries in
// asynq:servers and asynq:workers, one each a lane, whose own keys expire
// but which only asynq's listing of the servers drops: with no /metrics
// scrape, months of such deaths piled up in Redis. The sweep lists the
// servers now and then, which forgets them; a running one stays.
func TestSweepForgetsTheAsynqServersOfDeadProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	rdb := w.r.Client
	now := time.Now()
	for _, set := range []string{"asynq:servers", "asynq:workers"} {
		if err := rdb.ZAdd(ctx, set,
			redis.Z{Score: float64(now.Add(-time.Hour).Unix()), Member: set + ":{worker.3:41:dead-a}"},
			redis.Z{Score: float64(now.Add(-30 * 24 * time.Hour).Unix()), Member: set + ":{worker.2:7:dead-b}"},
			redis.Z{Score: float64(now.Add(time.Minute).Unix()), Member: set + ":{worker.1:9:running}"}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.sweep.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"asynq:servers", "asynq:workers"} {
		left, err := rdb.ZRange(ctx, set, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{set + ":{worker.1:9:running}"}; !slices.Equal(left, want) {
			t.Errorf("%s after a sweep = %v, want only the running server's %v", set, left, want)
		}
	}
}
