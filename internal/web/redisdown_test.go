package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// TestMetricsWhenRedisGoesDown scrapes the web process's /metrics, built
// as `rekey web` builds it, while Redis answers and after it stops
// answering: the test reaches Redis through a TCP relay, and "down" closes
// the relay's listener and every connection, as a Redis that died would.
// Down, /metrics still answers 200 with rekey_redis_up 0, so the alert
// `rekey_redis_up == 0` fires instead of a failed scrape that alerts on
// nothing, and /healthz says 503.
func TestMetricsWhenRedisGoesDown(t *testing.T) {
	t.Parallel()
	live := redistest.New(t)
	relay := redistest.NewRelay(t, live.Addr)
	client := redis.NewClient(&redis.Options{Addr: relay.Addr(), DB: live.DB, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	st := store.New(client, fixtureSealer(t))
	handler := metrics.NewHandler(metrics.HandlerParams{
		Collector: metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(client), zerolog.Nop()),
		Ping:      func(ctx context.Context) error { return client.Ping(ctx).Err() }})
	f := newFixture(t, func(p *web.Params) { p.Store, p.Metrics = st, handler })

	scrape := func() (int, string) {
		t.Helper()
		resp := f.do(http.MethodGet, "/metrics", nil, http.Header{"Authorization": {"Bearer " + apiToken}})
		return resp.status, resp.body
	}
	if status, body := scrape(); status != http.StatusOK || !hasSample(body, "rekey_redis_up", "1") || !strings.Contains(body, "rekey_instances") {
		t.Fatalf("Redis up: got %d:\n%s\nwant 200 with rekey_redis_up 1 and what Redis holds", status, body)
	}

	relay.Stop()
	status, body := scrape()
	if status != http.StatusOK || !hasSample(body, "rekey_redis_up", "0") {
		t.Fatalf("Redis down: got %d:\n%s\nwant 200 with rekey_redis_up 0", status, body)
	}
	if strings.Contains(body, "rekey_instances") || !strings.Contains(body, "rekey_build_info{") {
		t.Errorf("Redis down: /metrics = %s; want rekey_build_info and nothing read from Redis", body)
	}
	if resp := f.get("/healthz"); resp.status != http.StatusServiceUnavailable {
		t.Errorf("Redis down: /healthz got %d, want 503", resp.status)
	}
}

// hasSample reports whether the exposition holds the sample name (without
// labels) with value, as Prometheus reads it.
func hasSample(body, name, value string) bool {
	for line := range strings.Lines(body) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name && f[1] == value {
			return true
		}
	}
	return false
}

// TestHealthWhenRedisRefusesWrites: a Redis that answers PING but refuses
// every write (here min-replicas-to-write with no replica: NOREPLICAS, as
// a full Redis under noeviction answers OOM) stops every rotation and
// revocation. /healthz says 503 and why, and /metrics serves
// rekey_redis_up 1 with rekey_redis_writable 0, until Redis takes writes
// again.
func TestHealthWhenRedisRefusesWrites(t *testing.T) {
	t.Parallel()
	own := redistest.StartServerAt(t, redistest.FreePort(t)) // CONFIG SET is server-wide
	st := store.New(own.Client, fixtureSealer(t))
	handler := metrics.NewHandler(metrics.HandlerParams{
		Collector: metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(own.Client), zerolog.Nop()),
		Ping:      func(ctx context.Context) error { return own.Client.Ping(ctx).Err() },
		Write:     st.CheckWritable})
	f := newFixture(t, func(p *web.Params) { p.Store, p.Metrics = st, handler })
	check := func(wantStatus int, wantHealth, wantWritable string) {
		t.Helper()
		resp := f.get("/healthz")
		// A check's answer serves the probes of the next second.
		for deadline := time.Now().Add(3 * time.Second); resp.status != wantStatus && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			resp = f.get("/healthz")
		}
		if resp.status != wantStatus || !strings.Contains(resp.body, wantHealth) {
			t.Errorf("/healthz: got %d %s, want %d saying %q", resp.status, resp.body, wantStatus, wantHealth)
		}
		m := f.do(http.MethodGet, "/metrics", nil, http.Header{"Authorization": {"Bearer " + apiToken}})
		if !hasSample(m.body, "rekey_redis_up", "1") || !hasSample(m.body, "rekey_redis_writable", wantWritable) ||
			!strings.Contains(m.body, "rekey_instances") {
			t.Errorf("/metrics: want rekey_redis_up 1, rekey_redis_writable %s and what Redis holds:\n%s", wantWritable, m.body)
		}
	}
	check(http.StatusOK, `"ok"`, "1")
	ctx := context.Background()
	if err := own.Client.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
		t.Fatal(err)
	}
	check(http.StatusServiceUnavailable, "Redis refuses writes", "0")
	if err := own.Client.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	check(http.StatusOK, `"ok"`, "1")
}

// /healthz is open to anyone, and checks Redis with a write: a flood of
// probes writes to Redis about once a second, not once a probe.
func TestHealthProbesFloodNoWrites(t *testing.T) {
	t.Parallel()
	own := redistest.StartServerAt(t, redistest.FreePort(t)) // its own command counts
	st := store.New(own.Client, fixtureSealer(t))
	f := newFixture(t, func(p *web.Params) { p.Store = st })
	ctx := context.Background()
	if err := own.Client.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 200 {
		if resp := f.get("/healthz"); resp.status != http.StatusOK {
			t.Fatalf("/healthz: %d %s", resp.status, resp.body)
		}
	}
	took := time.Since(start)
	stats, err := own.Client.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	sets := 0
	for line := range strings.Lines(stats) {
		if rest, ok := strings.CutPrefix(line, "cmdstat_set:calls="); ok {
			sets, _ = strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		}
	}
	if limit := int(took/time.Second) + 2; sets < 1 || sets > limit {
		t.Errorf("200 probes in %s made %d SETs, want 1 to %d", took.Round(time.Millisecond), sets, limit)
	}
}

// A Redis that refuses REDIS_URL's password (a typo, or a password rotated
// since) answers every command with an error: /healthz says it is the
// URL, not that Redis refuses writes.
func TestHealthWhenRedisRefusesThePassword(t *testing.T) {
	t.Parallel()
	own := redistest.StartServerAt(t, redistest.FreePort(t))
	if err := own.Client.ConfigSet(context.Background(), "requirepass", "right-pw").Err(); err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: own.Addr, Password: "wrong-pw"})
	t.Cleanup(func() { _ = client.Close() })
	st := store.New(client, fixtureSealer(t))
	f := newFixture(t, func(p *web.Params) { p.Store = st })
	resp := f.get("/healthz")
	if resp.status != http.StatusServiceUnavailable || !strings.Contains(resp.body, "refuses REDIS_URL's user, password or database number") {
		t.Errorf("/healthz: got %d %s, want 503 naming REDIS_URL", resp.status, resp.body)
	}
	if strings.Contains(resp.body, "wrong-pw") || strings.Contains(resp.body, "right-pw") {
		t.Errorf("/healthz quotes a password: %s", resp.body)
	}
}

// TestAPIWhenRedisGoesDown: with Redis unreachable (a Key-Value Store
// failover), every API route answers 503 with Retry-After, as a PUT does,
// so that a client retrying 503s (Heroku's deprovisioning hook in the
// partner's app calls DELETE) retries, rather than a 500 that reads as a
// bug in rekey.
func TestAPIWhenRedisGoesDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	relay := f.throughRelay(t)
	if resp := f.api(http.MethodGet, "/api/v1/instances/inst-1", ""); resp.status != http.StatusOK {
		t.Fatalf("Redis up: GET got %d %s", resp.status, resp.body)
	}
	relay.Stop()
	reg := `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth":{"refresh_token":"r"}}`
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "/api/v1/instances/inst-1", reg},
		{http.MethodGet, "/api/v1/instances/inst-1", ""},
		{http.MethodDelete, "/api/v1/instances/inst-1", ""},
		{http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"]}`},
		{http.MethodPost, "/api/v1/rotations", `{"all":true}`},
		{http.MethodGet, "/api/v1/batches", ""},
		{http.MethodGet, "/api/v1/batches/bat_1", ""},
	} {
		resp := f.api(c.method, c.path, c.body)
		var e struct{ Error string }
		resp.json(t, &e)
		if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || e.Error == "" {
			t.Errorf("Redis down: %s %s got %d (Retry-After %q) %q; want 503 with Retry-After and a sentence",
				c.method, c.path, resp.status, resp.header.Get("Retry-After"), e.Error)
		}
	}
}

// TestSignedOutPageWhenRedisGoesDown: the signed-out page, asked for with
// a session cookie while Redis cannot be read, cannot tell whether that
// session was signed out (a link to the page, the back button to it after
// signing in again): it answers as the dashboard does then, rather than
// tell a customer who may be signed in that they are signed out. Without
// a session cookie, as a sign-out leaves the browser, it needs no Redis
// and says the customer is signed out.
func TestSignedOutPageWhenRedisGoesDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	relay := f.throughRelay(t)
	session := f.userLogin("inst-1", "user-1")
	if r := f.get("/dashboard/signed-out", session); r.status != http.StatusSeeOther || r.header.Get("Location") != "/dashboard" {
		t.Fatalf("Redis up: the signed-out page for a live session = %d to %q, want 303 to /dashboard", r.status, r.header.Get("Location"))
	}
	relay.Stop()
	dashboard := f.get("/dashboard", session)
	if dashboard.status == http.StatusOK {
		t.Fatalf("Redis down: the dashboard = 200:\n%s", dashboard.body)
	}
	r := f.get("/dashboard/signed-out", session)
	if r.status != dashboard.status || r.body != dashboard.body {
		t.Errorf("Redis down: the signed-out page with a session cookie = %d:\n%s\nwant the dashboard's %d:\n%s", r.status, r.body, dashboard.status, dashboard.body)
	}
	if strings.Contains(r.body, "signed out") {
		t.Errorf("Redis down: the signed-out page says the customer is signed out:\n%s", r.body)
	}
	if r := f.get("/dashboard/signed-out"); r.status != http.StatusOK || !strings.Contains(r.body, "You are signed out of the credentials dashboard.") {
		t.Errorf("Redis down: the signed-out page without a session cookie = %d, want 200 saying so:\n%s", r.status, r.body)
	}
}

// throughRelay serves f's web handler on a store, producer and registry
// that reach f's Redis through a relay, which the test stops to play
// Redis going away.
func (f *fixture) throughRelay(t *testing.T) *redistest.Relay {
	t.Helper()
	relay := redistest.NewRelay(t, f.r.Addr)
	client := redis.NewClient(&redis.Options{Addr: relay.Addr(), DB: f.r.DB, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	st := store.New(client, fixtureSealer(t), store.WithClock(f.clock.Now))
	p := f.params
	p.Store, p.Producer, p.Registry = st, fleet.NewProducer(st, asynq.NewClientFromRedisClient(client)), registry.New(st, nil)
	h, err := web.New(p)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Config.Handler = h
	return relay
}

// TestDashboardWhenRedisGoesDown: with Redis unreachable, every dashboard
// page a customer can reach answers 503 with Retry-After, as the API does,
// saying to try again: the customer's request may succeed in a moment,
// and a 500 reads as a bug in rekey to the browser, to Heroku's router
// metrics and to the partner's monitoring.
func TestDashboardWhenRedisGoesDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	relay := f.throughRelay(t)
	session := f.userLogin("inst-1", "user-1")
	token := f.csrf(session)
	relay.Stop()
	for _, c := range []struct {
		name string
		do   func() reply
	}{
		{"GET /dashboard", func() reply { return f.get("/dashboard", session) }},
		{"POST /dashboard/rotate", func() reply {
			return f.postForm("/dashboard/rotate", url.Values{"csrf_token": {token}}, session)
		}},
		{"POST /dashboard/revoke-now", func() reply {
			return f.postForm("/dashboard/revoke-now", url.Values{"csrf_token": {token}, "credential_id": {"cred-0"}}, session)
		}},
		{"POST /dashboard/logout", func() reply {
			return f.postForm("/dashboard/logout", url.Values{"csrf_token": {token}}, session)
		}},
		{"POST /sso/login", func() reply { return f.postForm("/sso/login", f.ssoForm("inst-1")) }},
	} {
		r := c.do()
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
			!strings.Contains(r.body, "Please try again in a minute.") {
			t.Errorf("Redis down: %s = %d (Retry-After %q), want 503 with Retry-After saying to try again:\n%.400s",
				c.name, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
}
