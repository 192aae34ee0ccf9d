package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/worker"
)

// testClientName names the test's own connections in CLIENT LIST, so that
// every other connection to a server of the test's own is rekey's.
const testClientName = "e2e-test"

// TestWorkerKeepsToItsRedisConnections runs a `rekey worker` process with
// REKEY_REDIS_POOL_SIZE=3 and 40 task slots through 80 rotations and their
// revocations on a Redis server of the test's own, and counts the
// process's connections (CLIENT LIST) every 20 ms: never more than its pool
// and one subscription per lane, however many tasks run at once, and every
// rotation still completes. A Heroku Key-Value Store plan accepts 20 to 80
// connections in all on its smaller plans.
func TestWorkerKeepsToItsRedisConnections(t *testing.T) {
	t.Parallel()
	const n, pool = 80, 3
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	unnamed := r.Client
	r.Client = redis.NewClient(&redis.Options{Addr: r.Addr, ClientName: testClientName})
	_ = unnamed.Close()
	// Heroku answers slowly enough that the background lane's ten slots are
	// all busy at once.
	w := newWorld(t, worldParams{redis: r, fake: []herokufake.Option{herokufake.WithLatency(50 * time.Millisecond)}})
	samples := w.provision(n, sandbox.DefaultMix)
	env := w.processEnv()
	env["REKEY_CONCURRENCY"] = "40"
	env["REKEY_REDIS_POOL_SIZE"] = strconv.Itoa(pool)
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
				most = max(most, rekeyConnections(list))
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
	if most <= len(worker.Lanes()) {
		t.Errorf("the worker held at most %d connections: the count missed its commands' connections", most)
	}
	t.Logf("the worker held at most %d connections to Redis (ceiling %d) through %d rotations", most, ceiling, n)
}

// rekeyConnections counts the connections CLIENT LIST shows that are not
// the test's own and are a second old or more: a connection of the test's
// is named within milliseconds of its accept, and a connection of the
// worker's pool stays open once made, so the next samples see it.
func rekeyConnections(list string) int {
	count := 0
	for line := range strings.Lines(list) {
		fields := strings.Fields(line)
		name, age := "", ""
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "name="); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(f, "age="); ok {
				age = v
			}
		}
		if len(fields) > 0 && name != testClientName && age != "0" {
			count++
		}
	}
	return count
}
