package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
)

// Operations under stress (issue 8, cases 12 and 13): processes started
// before their Redis, and encryption keys retired while rotations run.

const (
	opsAPIToken          = "ops-test-api-token-0123456789"
	opsDashboardPassword = "ops-dashboard-password"
)

// webEnv adds to env what `rekey web` needs, listening on a free port, and
// returns the base URL.
func webEnv(t *testing.T, env map[string]string) string {
	t.Helper()
	port := redistest.FreePort(t)
	env["PORT"] = strconv.Itoa(port)
	env["REKEY_API_TOKEN"] = opsAPIToken
	env["REKEY_DASHBOARD_PASSWORD"] = opsDashboardPassword
	env["HEROKU_SSO_SALT"] = "ops-sso-salt"
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// opsGet fetches url as an operator; status 0 means no answer (not listening yet).
func opsGet(url string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("ops", opsDashboardPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// alive fails the test if p has exited.
func (p *process) alive(what string) {
	p.t.Helper()
	select {
	case <-p.done:
		p.t.Fatalf("%s exited (%v); output:\n%s", what, p.err, p.stderr.String())
	default:
	}
}

// worldOn builds a test world on a Redis the test started itself (the
// harness's newWorld takes a fresh database of the shared server).
func worldOn(t *testing.T, r *redistest.Redis, sb *sandbox.Sandbox) *world {
	t.Helper()
	cfg, err := config.Load(sandbox.Lookup(sb.Env(r.URL)))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := cfg.Sealer()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, redis: r, sb: sb, cfg: cfg, store: store.New(r.Client, sealer),
		queue: asynq.NewClientFromRedisClient(r.Client), insp: asynq.NewInspectorFromRedisClient(r.Client)}
	sb.Checker.UseStore(w.store)
	w.hc = w.herokuClient(nil, nil)
	w.reg = registry.New(w.store, w.hc, registry.WithLocalStandIn(logplex.LocalStandIn(cfg.HerokuAPIURL)))
	return w
}

// TestProcessesStartedBeforeRedis starts `rekey web` and `rekey worker`
// while nothing listens on their REDIS_URL: neither exits, /healthz answers
// 503 saying Redis is unreachable, /metrics serves rekey_redis_up 0. Then
// Redis starts on that port: /healthz turns 200, the worker rotates an
// instance, and each process logged redis_down and redis_up once, not a
// line per retry, with the URL's password nowhere.
func TestProcessesStartedBeforeRedis(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.Start(sandbox.Params{Fake: []herokufake.Option{herokufake.WithRestartDelay(restartDelay, privateRestart)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	port := redistest.FreePort(t)
	const password = "redis-url-password-e2e"
	// The server started later has no password; a password in the URL only
	// matters for what the logs show while the dial fails.
	env := sb.Env(fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", password, port))
	env["REKEY_LOG_LEVEL"] = "info"
	env["REKEY_HEROKU_RATE"] = "1000000"
	env["REKEY_GRACE"] = testGrace.String()
	env["REKEY_PRIVATE_SPACE_GRACE"] = testPrivateGrace.String()
	base := webEnv(t, env)
	web := startRekey(t, env, "web")
	worker := startRekey(t, env, "worker")
	clock := startRekey(t, env, "scheduler")

	waitFor(t, 30*time.Second, "/healthz 503 while Redis is down", func() (bool, string) {
		code, body := opsGet(base + "/healthz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "Redis is unreachable"), fmt.Sprint(code, body)
	})
	code, body := opsGet(base + "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "rekey_redis_up 0") {
		t.Fatalf("/metrics with Redis down = %d %s; want rekey_redis_up 0", code, body)
	}
	// Every process, the scheduler too: on a loaded machine it may not
	// have tried Redis yet, and would never see it down.
	waitFor(t, 30*time.Second, "the three processes to report Redis down", func() (bool, string) {
		return strings.Contains(web.stderr.String(), `"redis_down"`) && strings.Contains(worker.stderr.String(), `"redis_down"`) &&
			strings.Contains(clock.stderr.String(), `"redis_down"`), ""
	})
	web.alive("rekey web")
	worker.alive("rekey worker")
	clock.alive("rekey scheduler")

	// Redis comes up, on the URL's port, with the URL's password.
	r := startRedisWithPassword(t, port, password)
	waitFor(t, time.Minute, "/healthz 200 once Redis answers", func() (bool, string) {
		code, body := opsGet(base + "/healthz")
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	if code, body := opsGet(base + "/metrics"); code != http.StatusOK || !strings.Contains(body, "rekey_redis_up 1") {
		t.Fatalf("/metrics with Redis up = %d %s", code, body)
	}
	w := worldOn(t, r, sb)
	samples := w.provision(2, sandbox.DefaultMix)
	res := w.rotate(samples[0].ID, samples[1].ID)
	if b := w.waitBatch(res.BatchID, time.Minute); b.Succeeded != 2 {
		t.Fatalf("batch after Redis came up: %+v", b)
	}
	web.alive("rekey web")
	worker.alive("rekey worker")
	waitFor(t, 30*time.Second, "the clock's first sweep", func() (bool, string) {
		return strings.Contains(clock.stderr.String(), "schedule_indexed"), clock.stderr.String()
	})

	// Each process's watcher pings on its own back-off (1 s, then 2 s, ...,
	// jittered), so the web process, which /healthz and /metrics answer
	// without it, may log redis_up a few seconds after Redis came up.
	processes := map[string]*process{"web": web, "worker": worker, "scheduler": clock}
	waitFor(t, 30*time.Second, "each process to log redis_up", func() (bool, string) {
		for name, p := range processes {
			if !strings.Contains(p.stderr.String(), `"redis_up"`) {
				return false, "not yet: rekey " + name
			}
		}
		return true, ""
	})
	for name, p := range processes {
		out := p.stderr.String()
		if d, u := strings.Count(out, `"redis_down"`), strings.Count(out, `"redis_up"`); d != 1 || u != 1 {
			t.Errorf("rekey %s logged redis_down %d times and redis_up %d times, want once each:\n%s", name, d, u, out)
		}
		if strings.Contains(out, password) {
			t.Errorf("rekey %s logged REDIS_URL's password", name)
		}
		if want := fmt.Sprintf(`"redis_pool_size":%d`, config.DefaultRedisPoolSize); !strings.Contains(out, want) {
			t.Errorf("rekey %s did not log its Redis pool size (%s)", name, want)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(line, "{") {
				t.Errorf("rekey %s wrote a line that is not JSON: %q", name, line)
			}
		}
	}
}

// startRedisWithPassword starts redis-server on port and sets its password.
func startRedisWithPassword(t *testing.T, port int, password string) *redistest.Redis {
	t.Helper()
	r := redistest.StartServerAt(t, port)
	ctx := context.Background()
	if err := r.Client.ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatal(err)
	}
	// The test's own client must now authenticate too.
	opt := *r.Client.Options()
	opt.Password = password
	_ = r.Client.Close()
	r.Client = redis.NewClient(&opt)
	r.URL = fmt.Sprintf("redis://:%s@%s/0", password, r.Addr)
	return r
}

// TestResealWhileRotationsRun retires an encryption key while a worker
// rotates: the worker runs with REKEY_ENCRYPTION_KEYS=new,old, `rekey keys
// reseal` runs again and again while the batch is in flight, then the old
// key is dropped: every stored value opens under the new key alone, the
// batch succeeded, and a worker holding only the new key rotates the
// whole fleet again.
func TestResealWhileRotationsRun(t *testing.T) {
	t.Parallel()
	const n = 60
	ctx := context.Background()
	// Heroku answers slowly and the worker runs two tasks at once, so the
	// batch lasts seconds and every reseal overlaps rotations.
	w := newWorld(t, worldParams{fake: []herokufake.Option{herokufake.WithLatency(150 * time.Millisecond)}})
	samples := w.provision(n, sandbox.DefaultMix)
	ids := make([]string, n)
	for i, s := range samples {
		ids[i] = s.ID
	}
	oldKey := w.sb.Env(w.redis.URL)["REKEY_ENCRYPTION_KEYS"]
	newKey := randomKey(t)
	env := w.processEnv()
	env["REKEY_CONCURRENCY"] = "2"
	env["REKEY_ENCRYPTION_KEYS"] = newKey + "," + oldKey
	worker := startRekey(t, env, "worker")

	res := w.rotate(ids...)
	reseals, overlapped := 0, 0
	for {
		p := startRekey(t, env, "keys", "reseal")
		if code := p.exit(time.Minute); code != 0 {
			t.Fatalf("rekey keys reseal exited %d:\n%s", code, p.stderr.String())
		}
		// The worker may have refreshed (and so resealed) a token first.
		if reseals++; reseals == 1 && resealedCount(p.stderr.String()) == 0 {
			t.Errorf("the first reseal moved nothing to the new key:\n%s", p.stderr.String())
		}
		b, err := w.store.Batch(ctx, res.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		if b.Done {
			if overlapped == 0 {
				t.Fatalf("the batch finished before the first reseal did, nothing ran concurrently: %+v", b)
			}
			break
		}
		overlapped++
	}
	b := w.waitBatch(res.BatchID, 2*time.Minute)
	if b.Succeeded != n || b.Failed != 0 {
		t.Fatalf("batch rotated while resealing: %+v", b)
	}
	worker.kill()
	// A last reseal catches what the final rotations wrote.
	if p := startRekey(t, env, "keys", "reseal"); p.exit(time.Minute) != 0 {
		t.Fatalf("final reseal failed:\n%s", p.stderr.String())
	}
	t.Logf("%d reseals, %d while the batch was in flight", reseals+1, overlapped)

	// Drop the old key.
	env["REKEY_ENCRYPTION_KEYS"] = newKey
	status := startRekey(t, env, "keys", "status", "--json")
	if code := status.exit(time.Minute); code != 0 || !strings.Contains(status.stderr.String(), `"unreadable_total": 0`) {
		t.Fatalf("keys status with the old key dropped exited %d:\n%s", code, status.stderr.String())
	}
	newOnly := storeWithKeys(t, w, newKey)
	st, err := newOnly.SealedStatus(ctx, 0)
	if err != nil || st.UnreadableTotal() != 0 || st.ByKey[0] != st.Values || st.Values < int64(n) {
		t.Fatalf("with the old key dropped: %+v, %v", st, err)
	}
	for _, s := range samples {
		if s.APIVersion != store.APIv3 {
			continue
		}
		if _, err := newOnly.LoadToken(ctx, s.ID); err != nil {
			t.Errorf("token of %s with the old key dropped: %v", s.ID, err)
		}
	}
	startRekey(t, env, "worker")
	again := w.rotate(ids...)
	if b := w.waitBatch(again.BatchID, 2*time.Minute); b.Succeeded != n || b.Failed != 0 {
		t.Fatalf("rotations with only the new key: %+v", b)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("%d invariant violations, first: %s", len(v), v[0])
	}
}

// resealedCount reads "N resealed" out of `rekey keys reseal`'s summary.
func resealedCount(out string) int {
	m := regexp.MustCompile(`: (\d+) resealed under key 1`).FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestStartupCheckNamesTheKeysVariable starts `rekey web` without the key
// the stored tokens were sealed under: it starts, logs an error naming
// REKEY_ENCRYPTION_KEYS with the count, and /metrics serves it.
func TestStartupCheckNamesTheKeysVariable(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	w.provision(3, sandbox.Mix{})
	env := w.sb.Env(w.redis.URL)
	env["REKEY_ENCRYPTION_KEYS"] = randomKey(t)
	base := webEnv(t, env)
	web := startRekey(t, env, "web")
	waitFor(t, 30*time.Second, "the start-up check", func() (bool, string) {
		return strings.Contains(web.stderr.String(), "sealed_values_unreadable"), web.stderr.String()
	})
	out := web.stderr.String()
	// Each of the 3 instances holds 2 sealed values: its OAuth tokens (one
	// value) and its log_input_url; and the fingerprint key, which the
	// first registration's current_config made, is a seventh.
	if !strings.Contains(out, "REKEY_ENCRYPTION_KEYS") || !strings.Contains(out, `"unreadable":7`) {
		t.Fatalf("the start-up check's line does not name the variable and the count:\n%s", out)
	}
	waitFor(t, 30*time.Second, "rekey_sealed_unreadable", func() (bool, string) {
		code, body := opsGet(base + "/metrics")
		return code == http.StatusOK && strings.Contains(body, "rekey_sealed_unreadable 7"), fmt.Sprint(code)
	})
	web.alive("rekey web")
}

// storeWithKeys is a store on w's Redis opening values with keys only.
func storeWithKeys(t *testing.T, w *world, keys string) *store.Store {
	t.Helper()
	env := w.sb.Env(w.redis.URL)
	env["REKEY_ENCRYPTION_KEYS"] = keys
	cfg, err := config.Load(sandbox.Lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := cfg.Sealer()
	if err != nil {
		t.Fatal(err)
	}
	return store.New(w.redis.Client, sealer)
}

// TestSIGTERMWhileWaitingForRedis stops processes that never saw Redis:
// each exits 0 at once, as Heroku's SIGTERM expects.
func TestSIGTERMWhileWaitingForRedis(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.Start(sandbox.Params{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	env := sb.Env(fmt.Sprintf("redis://127.0.0.1:%d/0", redistest.FreePort(t)))
	webEnv(t, env)
	for _, cmd := range []string{"web", "worker", "scheduler"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			p := startRekey(t, env, cmd)
			waitFor(t, 30*time.Second, "redis_down", func() (bool, string) {
				return strings.Contains(p.stderr.String(), `"redis_down"`), p.stderr.String()
			})
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.exit(25 * time.Second); code != 0 {
				t.Errorf("rekey %s exited %d after SIGTERM, want 0:\n%s", cmd, code, p.stderr.String())
			}
		})
	}
}
