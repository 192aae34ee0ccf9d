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

// TestHealthzWhileRedisStallsAnswers503: a Redis that stops answering must
// be told by /healthz as a 503 before an uptime checker or a load balancer
// gives up on the probe (5 s is a common timeout): a probe that times out
// says nothing of why. go-redis overran the check's own 2 s deadline on the
// stalled connection, and the probe took about 5.5 s.
func TestHealthzWhileRedisStallsAnswers503(t *testing.T) {
	c := newCLI(t)
	relay := redistest.NewRelay(t, c.r.Addr)
	u, err := url.Parse(c.r.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = relay.Addr()
	port := redistest.FreePort(t)
	startWeb(t, c, map[string]string{"PORT": strconv.Itoa(port), "REDIS_URL": u.String()})
	probe := func() (int, error) {
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := probe(); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz with Redis answering: %d, %v; want 200", code, err)
	}
	relay.Stall(true)
	defer relay.Stall(false)
	time.Sleep(1100 * time.Millisecond) // past the last check's answer, which serves a second
	for range 2 {
		if code, err := probe(); err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("/healthz while Redis stalls: %d, %v; want 503 within an uptime checker's 5 s", code, err)
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
