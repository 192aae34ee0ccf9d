package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

func TestHandlerSaysWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	col := metrics.NewCollector(store.New(r.Client, sealer), asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop())
	var redisErr error
	h := metrics.NewHandler(metrics.HandlerParams{Collector: col,
		Ping:       func(ctx context.Context) error { return redisErr },
		Unreadable: func() (int64, bool) { return 3, true }})
	scrape := func() string {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		return string(body)
	}
	up := scrape()
	for _, want := range []string{"rekey_redis_up 1", "rekey_instances 0", "rekey_sealed_unreadable 3"} {
		if !strings.Contains(up, want) {
			t.Errorf("with Redis up, /metrics lacks %q:\n%s", want, up)
		}
	}
	redisErr = errors.New("connection refused")
	down := scrape()
	if !strings.Contains(down, "rekey_redis_up 0") || strings.Contains(down, "rekey_instances") ||
		!strings.Contains(down, `rekey_build_info{goversion="go`) {
		t.Errorf("with Redis down, /metrics = %s; want rekey_redis_up 0, rekey_build_info and nothing read from Redis", down)
	}
}
