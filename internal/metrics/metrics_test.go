package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

func TestRecorderCountsReachTheCollector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	st := store.New(r.Client, sealer)
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	rec.Rotation(tasks.QueueBulk, "rotated")
	rec.Rotation(tasks.QueueBulk, "rotated")
	rec.Rotation(tasks.QueueInteractive, "rate_limited")
	rec.HerokuCall(heroku.CallInfo{Endpoint: "patch_config", Status: 429})
	rec.Revocation("revoked", 1500*time.Millisecond)
	rec.Revocation("revoked", 2*time.Hour)
	rec.PushLanded(42 * time.Second)
	rec.Flush(ctx)
	rec.Flush(ctx) // nothing new: adds nothing
	breaker := store.BreakerPolicy{Threshold: 2, Fraction: 1, Window: time.Minute}
	for _, id := range []string{"i-1", "i-2"} {
		if _, err := st.ObserveBreaker(ctx, id, store.DeniedForbidden, breaker); err != nil {
			t.Fatal(err)
		}
	}

	q := asynq.NewClientFromRedisClient(r.Client)
	task, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "i-1"}, asynq.Queue(tasks.QueueBulk))
	if _, err := q.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	// A revoke queue paused by hand (asynq's CLI) showed nowhere until a
	// revocation was overdue.
	insp := asynq.NewInspectorFromRedisClient(r.Client)
	revoke, _ := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "i-1", CredentialID: "c-1"}, time.Now().Add(time.Hour))
	if _, err := q.Enqueue(revoke); err != nil {
		t.Fatal(err)
	}
	if err := insp.PauseQueue(tasks.QueueRevoke); err != nil {
		t.Fatal(err)
	}
	col := metrics.NewCollector(st, insp, zerolog.Nop())
	srv := httptest.NewServer(col.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := []string{
		`rekey_rotations_total{outcome="rotated",queue="bulk"} 2`,
		`rekey_rotations_total{outcome="rate_limited",queue="interactive"} 1`,
		`rekey_heroku_calls_total{endpoint="patch_config",status="429"} 1`,
		`rekey_revocations_total{outcome="revoked"} 2`,
		`rekey_revoke_lag_seconds_bucket{le="1"} 0`,
		`rekey_revoke_lag_seconds_bucket{le="5"} 1`,
		`rekey_revoke_lag_seconds_bucket{le="3600"} 1`,
		`rekey_revoke_lag_seconds_bucket{le="+Inf"} 2`,
		`rekey_revoke_lag_seconds_sum 7201.5`,
		`rekey_revoke_lag_seconds_count 2`,
		`rekey_request_to_heroku_seconds_bucket{le="30"} 0`,
		`rekey_request_to_heroku_seconds_bucket{le="60"} 1`,
		`rekey_request_to_heroku_seconds_sum 42`,
		`rekey_request_to_heroku_seconds_count 1`,
		`rekey_queue_tasks{queue="bulk",state="pending"} 1`,
		`rekey_queue_paused{queue="revoke"} 1`,
		`rekey_queue_paused{queue="bulk"} 0`,
		`rekey_revocations_pending 0`,
		`rekey_revocations_dead 0`,
		`rekey_breaker_open 1`,
		`rekey_breaker_openings_total 1`,
	}
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			t.Errorf("metrics lack %q", w)
		}
	}
}

// TestFreshStoreExportsKnownSeriesAtZero: on a store nothing ran on, with no
// asynq queue yet, every counter whose labels come from a fixed set is
// served at 0, and so are the gauges of each of rekey's queues. A reviewer
// found them missing until their first event, so that
// increase(rekey_rotations_total{outcome="failed"}[15m]) > 0 missed the
// first failure: Prometheus takes a new series' first sample for its start.
// So are the Heroku calls answered 429, 500 or 503, or not answered, of
// each endpoint: an alert on their increase misses no first burst.
func TestFreshStoreExportsKnownSeriesAtZero(t *testing.T) {
	t.Parallel()
	r, _, st := newStateStore(t)
	got := scrape(t, metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler())
	want := []string{
		`rekey_revocations_total{outcome="revoked"}`,
		`rekey_revocations_total{outcome="failed"}`,
		`rekey_budget_wait_seconds_total{class="interactive"}`,
		`rekey_budget_wait_seconds_total{class="background"}`,
		`rekey_logplex_lines_total{outcome="sent"}`,
		`rekey_logplex_lines_total{outcome="failed"}`,
	}
	for _, op := range issuer.Ops() {
		for _, outcome := range []string{"ok", "refused", "failed"} {
			want = append(want, fmt.Sprintf("rekey_issuer_calls_total{op=%q,outcome=%q}", op, outcome))
		}
	}
	for _, e := range heroku.Endpoints() {
		for _, status := range []string{"0", "429", "500", "503"} {
			want = append(want, fmt.Sprintf("rekey_heroku_calls_total{endpoint=%q,status=%q}", e, status))
		}
	}
	for q := range tasks.Queues() {
		for _, state := range []string{"pending", "active", "scheduled", "retry", "archived"} {
			want = append(want, fmt.Sprintf("rekey_queue_tasks{queue=%q,state=%q}", q, state))
		}
		want = append(want, fmt.Sprintf("rekey_queue_latency_seconds{queue=%q}", q),
			fmt.Sprintf("rekey_queue_paused{queue=%q}", q))
		if q == tasks.QueueRevoke {
			continue // no rotate task runs there
		}
		for _, outcome := range handlers.Outcomes() {
			want = append(want, fmt.Sprintf("rekey_rotations_total{outcome=%q,queue=%q}", outcome, q))
		}
	}
	for _, series := range want {
		if v, ok := got[series]; !ok {
			t.Errorf("fresh store: %s not served, want it at 0", series)
		} else if v != 0 {
			t.Errorf("fresh store: %s %v, want 0", series, v)
		}
	}
	// No other label value is made up: a Heroku call's other statuses are
	// what Heroku answers, and the revoke queue runs no rotate task.
	for series := range got {
		family, _, _ := strings.Cut(series, "{")
		if (family == "rekey_heroku_calls_total" || family == "rekey_rotations_total") && !slices.Contains(want, series) {
			t.Errorf("fresh store: %s served, no known combination of labels", series)
		}
	}
}
