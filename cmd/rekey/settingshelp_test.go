package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/redisclock"
	"github.com/rekeyhq/rekey/internal/secret"
)

// rekey_settings_variants counts the values of every setting the processes
// announce (sharedSettings), and its HELP names each of them: an operator
// paged by it for two workers that differ in REKEY_REDIS_WAIT_REPLICAS, or
// in the PostgreSQL issuer's key, reads there which settings to compare.
func TestSettingsVariantsHelpNamesEverySharedSetting(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	cfg := func(replicas int) *config.Config {
		return &config.Config{HerokuRate: 3600, RateScope: "account", Grace: 2 * time.Hour,
			PrivateSpaceGrace: 4 * time.Hour, RedisWaitReplicas: replicas, Issuer: config.IssuerPostgres,
			PostgresServers: []pgissuer.Server{{ID: "main", AdminURL: secret.New("postgres://admin:pw@db:5432/postgres")}},
			PostgresKey:     []byte(strings.Repeat("k", 32)),
			HerokuAPIURL:    "https://api.heroku.com"}
	}
	a := &app{cfg: cfg(0), rdb: c.r.Client, store: c.st, log: zerolog.Nop(), redact: func(s string) string { return s }}
	var err error
	if a.clock, err = redisclock.New(redisclock.Params{Redis: c.r.Client}); err != nil {
		t.Fatal(err)
	}
	if err := c.st.AnnounceSharedSettings(ctx, "worker.1", sharedSettings(cfg(0)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.st.AnnounceSharedSettings(ctx, "worker.2", sharedSettings(cfg(1)), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.metricsHandler(asynq.NewInspectorFromRedisClient(c.r.Client)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if !strings.Contains(page, "\nrekey_settings_variants 2\n") {
		t.Fatalf("two workers differing in REKEY_REDIS_WAIT_REPLICAS: /metrics lacks rekey_settings_variants 2:\n%s", page)
	}
	help := regexp.MustCompile(`(?m)^# HELP rekey_settings_variants (.*)$`).FindStringSubmatch(page)
	if help == nil {
		t.Fatalf("/metrics has no HELP for rekey_settings_variants:\n%s", page)
	}
	for _, kv := range strings.Fields(sharedSettings(cfg(0))) {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.Contains(help[1], name) {
			t.Errorf("rekey_settings_variants' HELP does not name %s, which the processes compare: %q", name, help[1])
		}
	}
}
