package metrics_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestMetricsPassPromlint lints what /metrics serves, with every kind of
// series present, the way Prometheus' own tooling would.
func TestMetricsPassPromlint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	st := store.New(r.Client, sealer)
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	rec.Rotation(tasks.QueueBulk, "rotated")
	rec.HerokuCall(heroku.CallInfo{Endpoint: "patch_config", Status: 200})
	rec.Revocation("revoked", 3*time.Second)
	rec.Revocation("failed", 0)
	rec.PushLanded(90 * time.Second)
	rec.LogLine("sent")
	rec.Flush(ctx)
	now := time.Now()
	held := previousSince(t, r, sealer, "i-held", time.Minute)
	if err := st.SaveHold(ctx, store.Hold{InstanceID: held.InstanceID, CredentialID: held.CredentialID, RevokeAt: now,
		HeldAt: now, CapAt: now.Add(time.Hour), LastUsedAt: now, CheckedAt: now}, store.EventRevocationHeld, "was used"); err != nil {
		t.Fatal(err)
	}
	q := asynq.NewClientFromRedisClient(r.Client)
	task, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "i-1"}, asynq.Queue(tasks.QueueBulk))
	if _, err := q.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	if err := pacing.NewClient(q, r.Client, nil).HoldMany(ctx, []string{"rot-held"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AnnounceSharedSettings(ctx, "worker.1", "REKEY_HEROKU_RATE=4000", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Epoch(ctx, store.NewEpochMark(now)); err != nil {
		t.Fatal(err)
	}
	col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop(),
		metrics.WithPacedBacklog(r.Client))
	h := metrics.NewHandler(metrics.HandlerParams{Collector: col,
		Ping:        func(ctx context.Context) error { return r.Client.Ping(ctx).Err() },
		Write:       st.CheckWritable,
		Durable:     st.Durable,
		Unreadable:  func() (int64, bool) { return 0, true },
		ClockOffset: func() (time.Duration, bool) { return -1500 * time.Millisecond, true }})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(w.Body)
	for _, family := range []string{"rekey_revoke_lag_seconds_bucket", "rekey_request_to_heroku_seconds_bucket",
		"rekey_build_info{", "rekey_rotations_total", "rekey_queue_tasks", "rekey_revocations_held 1",
		"rekey_revocation_oldest_hold_seconds", "rekey_logplex_lines_total{outcome=\"sent\"} 1",
		"rekey_revoke_overdue_seconds", "rekey_pace_held_rotations 1", "rekey_pace_oldest_held_seconds",
		"rekey_settings_variants 1", "rekey_redis_writable 1", "rekey_redis_replicated 1", "rekey_clock_offset_seconds -1.5",
		"rekey_redis_data_start_time_seconds", "rekey_instances_quarantined 0"} {
		if !strings.Contains(string(body), family) {
			t.Fatalf("/metrics lacks %s, so the lint would not cover it:\n%s", family, body)
		}
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
