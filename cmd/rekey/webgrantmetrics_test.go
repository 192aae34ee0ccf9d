package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// A registration's oauth_grant exchange, the web process's own call to
// Heroku, is counted in rekey_heroku_calls_total{endpoint="oauth_token"}
// on the next scrape: the web process counted none of its calls, so a
// Heroku OAuth outage failing every provisioning showed nowhere in the
// metrics, and rekey dev's summary counted exchanges /metrics did not.
func TestWebCountsItsGrantExchanges(t *testing.T) {
	c := newCLI(t)
	fake := herokufake.New()
	heroku := httptest.NewServer(fake)
	defer heroku.Close()
	const addon = "01234567-89ab-4cde-8f01-23456789abcd"
	if err := fake.AddAddon(herokufake.AddonSpec{ID: addon, App: "my-app", ConfigVars: []string{"MYADDON_URL"},
		InitialConfig: map[string]string{"MYADDON_URL": "postgres://provisioned-1"}}); err != nil {
		t.Fatal(err)
	}
	call := startWeb(t, c, map[string]string{"HEROKU_API_URL": heroku.URL, "HEROKU_ID_URL": heroku.URL,
		"HEROKU_OAUTH_CLIENT_SECRET": herokufake.DefaultClientSecret})
	body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"` + fake.GrantCode(addon) +
		`"},"current_credential_id":"provisioned-1"}`
	if code, got := call("PUT", "/api/v1/instances/"+addon, body); code/100 != 2 {
		t.Fatalf("PUT: %d %s", code, got)
	}
	code, metrics := call("GET", "/metrics", "")
	const want = `rekey_heroku_calls_total{endpoint="oauth_token",status="200"} 1`
	if code != 200 || !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics (%d) after a registration's grant exchange has no %s:\n%s", code, want,
			grepLines(metrics, "rekey_heroku_calls_total"))
	}
}

// grepLines keeps the lines of s that hold word.
func grepLines(s, word string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestMetricsSayWhenRedisMayEvict: a process warns of an evicting
// maxmemory-policy only at its start, so a policy changed while rekey runs
// (allkeys-lru, the usual answer to "OOM command not allowed") went unseen
// until a restart, while Redis could evict the revocations rekey owes.
// /metrics reads it at every scrape, with Redis's count of evicted keys.
func TestMetricsSayWhenRedisMayEvict(t *testing.T) {
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	call := startWeb(t, newCLI(t), map[string]string{"REDIS_URL": r.URL})
	scrape := func() string {
		t.Helper()
		_, body := call(http.MethodGet, "/metrics", "")
		return body
	}
	if got := scrape(); !strings.Contains(got, "rekey_redis_may_evict 0\n") || !strings.Contains(got, "rekey_redis_evicted_keys_total 0\n") {
		t.Errorf("/metrics under noeviction: %s", grepLines(got, "evict"))
	}
	if err := r.Client.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if got := scrape(); !strings.Contains(got, "rekey_redis_may_evict 1\n") {
		t.Errorf("/metrics once the policy is allkeys-lru: %s", grepLines(got, "evict"))
	}
}

// startWeb runs `rekey web` in the test's process on a free port with c's
// variables, an API token and extra (PORT among them, or a free port), until the test ends, and returns a
// function that calls it with the token once it answers.
func startWeb(t *testing.T, c *cli, extra map[string]string) func(method, path, body string) (int, string) {
	t.Helper()
	port, ok := extra["PORT"]
	if !ok {
		port = fmt.Sprint(redistest.FreePort(t))
	}
	const token = "api-token-of-the-test-0123"
	vars := c.vars()
	maps.Copy(vars, map[string]string{"PORT": port, "REKEY_API_TOKEN": token,
		"REKEY_DASHBOARD_PASSWORD": "dashboard-password", "HEROKU_SSO_SALT": "sso-salt-of-the-test"})
	maps.Copy(vars, extra)
	var stderr syncBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, "web") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("rekey web: %v\n%s", err, stderr.String())
		}
	})
	call := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, "http://127.0.0.1:"+port+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	c.waitFor(t, "rekey web to answer", func() bool { code, _ := call(http.MethodGet, "/healthz", ""); return code == 200 })
	return call
}
