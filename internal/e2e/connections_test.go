package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
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

// ownRedisWorld is a sandbox and the environment of rekey's processes on
// a private redis-server of the test's own, whose maxclients it may set.
func ownRedisWorld(t *testing.T) (*redistest.Redis, map[string]string) {
	t.Helper()
	sb, err := sandbox.Start(sandbox.Params{Fake: []herokufake.Option{herokufake.WithRestartDelay(restartDelay, privateRestart)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	return r, worldOn(t, r, sb).processEnv()
}

// TestAWorkerShortOfConnectionsSaysSo runs a `rekey worker` process on a
// Redis whose maxclients leaves it one connection: its ping answers, so
// it starts, but Redis refuses each of its lanes' subscriptions (asynq
// logs "broken pipe" every few seconds, and a cancellation never reaches
// the worker). Within seconds the worker logs redis_full at error level,
// naming maxclients and REKEY_REDIS_POOL_SIZE, once however often asynq
// fails, and stays up.
func TestAWorkerShortOfConnectionsSaysSo(t *testing.T) {
	t.Parallel()
	r, env := ownRedisWorld(t)
	env["REKEY_LOG_LEVEL"] = "info"
	ctx := context.Background()
	list, err := r.Client.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	open := strings.Count(list, "\n")
	if err := r.Client.ConfigSet(ctx, "maxclients", strconv.Itoa(open+1)).Err(); err != nil {
		t.Fatal(err)
	}
	p := startRekey(t, env, "worker")
	waitFor(t, 20*time.Second, "the worker to say Redis is full", func() (bool, string) {
		return strings.Contains(p.stderr.String(), `"redis_full"`), ""
	})
	// asynq retries each subscription every 5 s: another round of
	// failures does not repeat the line.
	time.Sleep(6 * time.Second)
	p.alive("rekey worker")
	var lines []string
	for l := range strings.Lines(p.stderr.String()) {
		if strings.Contains(l, `"redis_full"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("the worker logged redis_full %d times, want once:\n%s", len(lines), p.stderr)
	}
	for _, want := range []string{`"level":"error"`, "maxclients", "REKEY_REDIS_POOL_SIZE"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("redis_full line %q lacks %s", lines[0], want)
		}
	}
}

// TestHealthzOnAFullRedisSaysSo starts `rekey web` on a Redis at its
// maxclients, which refuses every connection the process opens: /healthz
// answers 503 saying Redis refuses new connections at its maxclients and
// naming REKEY_REDIS_POOL_SIZE, where it said Redis was unreachable.
func TestHealthzOnAFullRedisSaysSo(t *testing.T) {
	t.Parallel()
	r, env := ownRedisWorld(t)
	ctx := context.Background()
	list, err := r.Client.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client.ConfigSet(ctx, "maxclients", strconv.Itoa(strings.Count(list, "\n"))).Err(); err != nil {
		t.Fatal(err)
	}
	base := webEnv(t, env)
	p := startRekey(t, env, "web")
	waitFor(t, 30*time.Second, "/healthz to answer 503", func() (bool, string) {
		code, body := opsGet(base + "/healthz")
		return code == http.StatusServiceUnavailable, fmt.Sprint(code, body)
	})
	p.alive("rekey web")
	_, body := opsGet(base + "/healthz")
	for _, want := range []string{"maxclients", "REKEY_REDIS_POOL_SIZE"} {
		if !strings.Contains(body, want) {
			t.Errorf("/healthz on a full Redis = %s, want it to name %s", body, want)
		}
	}
	if strings.Contains(body, r.Addr) {
		t.Errorf("/healthz, which is open, names Redis's address: %s", body)
	}
}
