package metrics_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/store"
)

// /metrics shows when scheduled rotation has stopped: the last good sweep's
// time stays put while every sweep fails (rekey_scheduler_last_sweep_failed
// 1), a pause and the clock and worker processes that run are counted, and
// each is served at 0 on a store no process ran on, so an alert on them
// needs no absent().
func TestSchedulerAndWorkersAreExported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, st := newStateStore(t)
	col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler()
	want := func(when string, series map[string]float64) {
		t.Helper()
		got := scrape(t, col)
		for name, v := range series {
			if g, ok := got[name]; !ok || g != v {
				t.Errorf("%s: %s %v (served %v), want %v", when, name, g, ok, v)
			}
		}
	}
	want("fresh store", map[string]float64{"rekey_scheduler_last_sweep_timestamp_seconds": 0,
		"rekey_scheduler_last_sweep_failed": 0, "rekey_scheduler_paused": 0, "rekey_scheduler_clocks": 0, "rekey_workers": 0})

	now := time.Now().Truncate(time.Second)
	good := now.Add(-2 * time.Minute)
	if err := st.ClockAlive(ctx, "clock-1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordSweep(ctx, store.SweepRecord{At: good, Next: good.Add(time.Minute), Outcome: "swept"}); err != nil {
		t.Fatal(err)
	}
	want("a clock that swept", map[string]float64{"rekey_scheduler_last_sweep_timestamp_seconds": float64(good.Unix()),
		"rekey_scheduler_last_sweep_failed": 0, "rekey_scheduler_clocks": 1})

	failed := store.SweepRecord{At: now.Add(-time.Minute), Next: now, Outcome: "failed", Error: "due_index: redis_error"}
	if err := st.RecordSweep(ctx, failed); err != nil {
		t.Fatal(err)
	}
	if err := st.PauseSchedule(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	want("a failed sweep, then a pause", map[string]float64{
		"rekey_scheduler_last_sweep_timestamp_seconds": float64(good.Unix()),
		"rekey_scheduler_last_sweep_failed":            1, "rekey_scheduler_paused": 1})

	if err := st.ClockStopped(ctx, "clock-1", now, time.Minute); err != nil {
		t.Fatal(err)
	}
	want("the clock stopped", map[string]float64{"rekey_scheduler_clocks": 0})

	// One worker process runs an asynq server a lane: it counts once.
	var lanes []*asynq.Server
	for _, q := range []string{"interactive", "bulk", "revoke"} {
		srv := asynq.NewServerFromRedisClient(r.Client, asynq.Config{Concurrency: 1, Queues: map[string]int{q: 1},
			Logger: nopAsynqLogger{}})
		if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
			t.Fatal(err)
		}
		lanes = append(lanes, srv)
	}
	stopped := false
	stop := func() {
		for _, srv := range lanes {
			srv.Shutdown()
		}
		stopped = true
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	waitServers(t, r.Client, len(lanes))
	waitGauge(t, col, "rekey_workers", 1)
	stop()
	waitGauge(t, col, "rekey_workers", 0)
}

// waitGauge polls /metrics until series reads v, failing t after ten
// seconds (asynq's heartbeat).
func waitGauge(t *testing.T, col http.Handler, series string, v float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, ok := scrapeGauge(t, col, series)
		if ok && got == v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %v (served %v) after 10s, want %v", series, got, ok, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nopAsynqLogger drops asynq's own log lines.
type nopAsynqLogger struct{}

func (nopAsynqLogger) Debug(...any) {}
func (nopAsynqLogger) Info(...any)  {}
func (nopAsynqLogger) Warn(...any)  {}
func (nopAsynqLogger) Error(...any) {}
func (nopAsynqLogger) Fatal(...any) {}

// waitServers waits until n asynq servers have written their heartbeats,
// so that a gauge of 1 counts them all, not the first alone.
func waitServers(t *testing.T, rdb redis.UniversalClient, n int) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		servers, err := insp.Servers()
		if err == nil && len(servers) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d asynq servers' heartbeats after 10 s (%v), want %d", len(servers), err, n)
		}
	}
}

// TestQuarantinedInstancesAreExported: an instance set aside (its scheduled
// rotation failing cycle after cycle, its add-on gone, a token that cannot be
// opened) is rotated no more, so its failures stop and an alert on
// rekey_rotations_total{outcome="failed"} resolves while the instance goes
// unrotated. rekey_instances_quarantined counts such instances, at 0 on a
// store where none ever was, and back to 0 when the quarantine ends.
func TestQuarantinedInstancesAreExported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, st := newStateStore(t)
	col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler()
	quarantined := func() (float64, bool) {
		t.Helper()
		return scrapeGauge(t, col, "rekey_instances_quarantined")
	}
	if v, ok := quarantined(); !ok || v != 0 {
		t.Fatalf("fresh store: rekey_instances_quarantined %v (served %v), want 0", v, ok)
	}
	for _, id := range []string{"i-1", "i-2"} {
		if err := st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
			ConfigVars: []string{"MYADDON_URL"}}); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Quarantine(ctx, id, "Heroku reports the add-on deprovisioned"); !ok || err != nil {
			t.Fatalf("quarantine %s: %v, %v", id, ok, err)
		}
	}
	if v, ok := quarantined(); !ok || v != 2 {
		t.Fatalf("two quarantined: rekey_instances_quarantined %v (served %v), want 2", v, ok)
	}
	for _, id := range []string{"i-1", "i-2"} {
		if _, err := st.Unquarantine(ctx, id, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := quarantined(); !ok || v != 0 {
		t.Fatalf("unquarantined: rekey_instances_quarantined %v (served %v), want 0", v, ok)
	}
}
