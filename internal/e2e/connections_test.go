package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/worker"
)

// workerClientName names the worker's connections (client_name in its
// REDIS_URL), so that CLIENT LIST tells them from the test's own.
const workerClientName = "e2e-worker"

// TestWorkerKeepsToItsRedisConnections runs a `rekey worker` process with
// REKEY_REDIS_POOL_SIZE=3 and 80 task slots (20 on the background lane,
// which serves the default queue) through 80 rotations and their
// revocations, and counts the process's connections (CLIENT LIST, by the
// name its REDIS_URL gives them) every 20 ms: never more than its pool and
// one subscription per lane, however many tasks run at once, and every
// rotation still completes. Heroku Key-Value Store's smaller plans accept
// 20 to 80 connections in all.
func TestWorkerKeepsToItsRedisConnections(t *testing.T) {
	t.Parallel()
	const n, pool = 80, 3
	// Heroku answers slowly enough that the background lane's slots are
	// all busy at once.
	w := newWorld(t, worldParams{fake: []herokufake.Option{herokufake.WithLatency(50 * time.Millisecond)}})
	samples := w.provision(n, sandbox.DefaultMix)
	env := w.processEnv()
	env["REKEY_CONCURRENCY"] = "80"
	env["REKEY_REDIS_POOL_SIZE"] = strconv.Itoa(pool)
	env["REDIS_URL"] = sandbox.NamedRedisURL(env["REDIS_URL"], workerClientName)
	startRekey(t, env, "worker")

	ctx, stop := context.WithCancel(context.Background())
	peak := make(chan int, 1)
	go func() {
		most := 0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				peak <- most
				return
			case <-tick.C:
			}
			list, err := w.redis.Client.ClientList(ctx).Result()
			if err == nil {
				most = max(most, sandbox.ClientsNamed(list, workerClientName))
			}
		}
	}()
	ids := make([]string, n)
	for i, s := range samples {
		ids[i] = s.ID
	}
	res := w.rotate(ids...)
	b := w.waitBatch(res.BatchID, 2*time.Minute)
	w.waitRevoked(time.Minute)
	stop()
	most := <-peak

	if b.Succeeded != n || b.Failed != 0 {
		t.Fatalf("batch: %d succeeded, %d failed (%v); want all %d", b.Succeeded, b.Failed, b.Failures, n)
	}
	for _, s := range samples {
		checkRotated(t, w, s)
	}
	ceiling := pool + len(worker.Lanes())
	if most > ceiling {
		t.Errorf("the worker held %d connections to Redis at once, want at most %d (pool %d, %d lanes' subscriptions)",
			most, ceiling, pool, len(worker.Lanes()))
	}
	if most < ceiling {
		t.Errorf("the worker held at most %d connections, want its pool full at some point (%d): the test did not reach the cap", most, ceiling)
	}
	t.Logf("the worker held at most %d connections to Redis (ceiling %d) through %d rotations", most, ceiling, n)
}
