package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
)

// persistentRedis is a redis-server writing every change to its
// append-only file, so that a SIGKILL loses nothing: the persistence a
// production Redis (Heroku Key-Value Store) has.
type persistentRedis struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPersistentRedis(t *testing.T) (*persistentRedis, *redistest.Redis) {
	t.Helper()
	pr := &persistentRedis{port: redistest.FreePort(t), dir: t.TempDir()}
	pr.start(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pr.port))
	r := &redistest.Redis{Addr: addr, URL: "redis://" + addr + "/0", Client: redis.NewClient(&redis.Options{Addr: addr})}
	t.Cleanup(func() { _ = r.Client.Close(); pr.kill() })
	return pr, r
}

func (pr *persistentRedis) start(t *testing.T) {
	t.Helper()
	pr.cmd = exec.Command("redis-server", "--port", strconv.Itoa(pr.port), "--bind", "127.0.0.1", "--dir", pr.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	pr.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pr.cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(pr.port))})
	defer c.Close()
	waitFor(t, 10*time.Second, "redis-server up", func() (bool, string) {
		err := c.Ping(context.Background()).Err()
		return err == nil, fmt.Sprint(err)
	})
}

func (pr *persistentRedis) kill() {
	if pr.cmd != nil && pr.cmd.Process != nil {
		_ = pr.cmd.Process.Kill()
		_ = pr.cmd.Wait()
	}
}

// TestHoldSurvivesWorkerKillAndRedisRestart holds revocations with real
// `rekey worker` processes, SIGKILLs every worker and Redis itself while
// they are held, restarts Redis from its append-only file and starts a new
// worker: every hold is still there, and every held credential is revoked
// only once its use stopped, none lost and none before its grace.
func TestHoldSurvivesWorkerKillAndRedisRestart(t *testing.T) {
	t.Parallel()
	const n, heldEvery = 20, 2
	ctx := context.Background()
	pr, r := startPersistentRedis(t)
	w := newWorld(t, worldParams{redis: r})
	samples := w.provision(n, sandbox.Mix{})
	env := w.sb.Env(w.redis.URL)
	env["REKEY_GRACE"] = testGrace.String()
	env["REKEY_HEROKU_RATE"] = "1000000"
	env["REKEY_LOG_LEVEL"] = "warn"
	env["REKEY_HOLD_QUIET"] = testQuiet.String()
	env["REKEY_HOLD_RECHECK"] = time.Second.String()
	env["REKEY_HOLD_MAX"] = "1h"
	workers := []*process{startRekey(t, env, "worker"), startRekey(t, env, "worker")}
	useFor := testGrace + 15*time.Second
	until := map[string]time.Time{}
	for i, s := range samples {
		if i%heldEvery == 0 {
			until[s.ID] = time.Now().Add(useFor)
			w.sb.Demo.UseUntil(s.Provisioned, until[s.ID], "one-off dyno run.4127")
		}
	}
	w.rotateAll(samples)
	waitFor(t, time.Minute, "held revocations", func() (bool, string) {
		sum, err := w.store.HoldStats(ctx)
		return err == nil && sum.Held == int64(len(until)), fmt.Sprintf("%+v %v", sum, err)
	})
	for _, p := range workers {
		p.kill()
	}
	pr.kill()
	pr.start(t)
	sum, err := w.store.HoldStats(ctx)
	if err != nil || sum.Held != int64(len(until)) {
		t.Fatalf("after the restart of Redis: %+v, %v; want %d holds", sum, err, len(until))
	}
	startRekey(t, env, "worker")
	w.waitRevoked(2 * time.Minute)
	var worst time.Duration
	for _, s := range samples {
		old, _ := w.store.Credential(ctx, s.ID, s.Provisioned)
		at, ok := w.sb.Demo.RevokedAt(s.Provisioned)
		switch {
		case !ok:
			t.Errorf("%s: not revoked", s.ID)
		case at.Before(old.RevokeAt):
			t.Errorf("%s: revoked before its grace (I2)", s.ID)
		case !until[s.ID].IsZero() && at.Before(until[s.ID]):
			t.Errorf("%s: revoked at %s while in use until %s", s.ID, at, until[s.ID])
		case !until[s.ID].IsZero():
			worst = max(worst, at.Sub(until[s.ID]))
		}
	}
	t.Logf("%d holds survived SIGKILL of 2 workers and of Redis; each released %s at most after its use stopped", len(until), worst.Round(time.Millisecond))
}
