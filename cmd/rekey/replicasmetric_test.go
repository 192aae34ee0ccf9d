package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/redisclock"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// Under REKEY_REDIS_WAIT_REPLICAS a Redis whose replica went away after the
// processes started still answers and takes writes, so rekey_redis_up and
// rekey_redis_writable read 1 while every worker mints, pushes and revokes
// nothing (store.ErrNotDurable, retried). /metrics says so:
// rekey_redis_replicated is 1 while the replicas the setting asks for
// acknowledge the scrape's write, 0 when they do not.
func TestMetricsSayWhenTheReplicasStopAcknowledging(t *testing.T) {
	primary, replica := redistest.StartReplicated(t)
	ctx := context.Background()
	sealer, err := seal.New(testKey)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: &config.Config{RedisWaitReplicas: 1}, rdb: primary.Client,
		store: store.New(primary.Client, sealer, store.WithDurability(1)), log: zerolog.Nop(),
		redact: func(s string) string { return s }}
	if a.clock, err = redisclock.New(redisclock.Params{Redis: primary.Client}); err != nil {
		t.Fatal(err)
	}
	h := a.metricsHandler(asynq.NewInspectorFromRedisClient(primary.Client))
	scrape := func() string {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		return string(body)
	}
	if got := scrape(); !strings.Contains(got, "\nrekey_redis_replicated 1\n") {
		t.Fatalf("with its replica in sync, /metrics lacks rekey_redis_replicated 1:\n%s", got)
	}
	if err := replica.Client.Do(ctx, "replicaof", "no", "one").Err(); err != nil {
		t.Fatal(err)
	}
	got := scrape()
	for _, want := range []string{"\nrekey_redis_up 1\n", "\nrekey_redis_writable 1\n", "\nrekey_redis_replicated 0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("with the replica gone, /metrics lacks %q:\n%s", strings.TrimSpace(want), got)
		}
	}
}
