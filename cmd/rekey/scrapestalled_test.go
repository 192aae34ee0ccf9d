package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// TestAScrapeWhileRedisStallsReadsRedisDown: a Redis that stops answering
// (frozen, a host gone without a reset) while the web process holds counts
// of its own not yet flushed (a registration's grant exchange) must still
// be scraped within Prometheus's default 10 s timeout and read
// rekey_redis_up 0: a scrape that times out serves no series at all.
func TestAScrapeWhileRedisStallsReadsRedisDown(t *testing.T) {
	c := newCLI(t)
	relay := redistest.NewRelay(t, c.r.Addr)
	u, err := url.Parse(c.r.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = relay.Addr()
	fake := herokufake.New()
	heroku := httptest.NewServer(fake)
	defer heroku.Close()
	const addon = "01234567-89ab-4cde-8f01-23456789abcd"
	if err := fake.AddAddon(herokufake.AddonSpec{ID: addon, App: "my-app", ConfigVars: []string{"MYADDON_URL"},
		InitialConfig: map[string]string{"MYADDON_URL": "postgres://provisioned-1"}}); err != nil {
		t.Fatal(err)
	}
	port := redistest.FreePort(t)
	call := startWeb(t, c, map[string]string{"PORT": strconv.Itoa(port), "REDIS_URL": u.String(), "HEROKU_API_URL": heroku.URL,
		"HEROKU_ID_URL": heroku.URL, "HEROKU_OAUTH_CLIENT_SECRET": herokufake.DefaultClientSecret})
	body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"` + fake.GrantCode(addon) +
		`"},"current_credential_id":"provisioned-1"}`
	if code, got := call(http.MethodPut, "/api/v1/instances/"+addon, body); code/100 != 2 {
		t.Fatalf("PUT: %d %s", code, got)
	}
	relay.Stall(true)
	defer relay.Stall(false)
	for range 2 { // the second scrape holds the counts the first failed to flush
		up, err := scrapeRedisUp(port)
		if err != nil {
			t.Fatalf("scrape while Redis stalls: %v", err)
		}
		if up != 0 {
			t.Errorf("rekey_redis_up while Redis stalls = %v, want 0", up)
		}
	}
}

// scrapeRedisUp scrapes the web process on port as Prometheus does, with
// its default 10 s timeout, and returns rekey_redis_up.
func scrapeRedisUp(port int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer api-token-of-the-test-0123")
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	f, ok := families["rekey_redis_up"]
	if !ok || len(f.GetMetric()) != 1 {
		return 0, errors.New("no rekey_redis_up in the scrape")
	}
	return f.GetMetric()[0].GetGauge().GetValue(), nil
}
