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
	port := fmt.Sprint(redistest.FreePort(t))
	const token = "api-token-of-the-test-0123"
	vars := c.vars()
	maps.Copy(vars, map[string]string{"PORT": port, "REKEY_API_TOKEN": token,
		"REKEY_DASHBOARD_PASSWORD": "dashboard-password", "HEROKU_SSO_SALT": "sso-salt-of-the-test",
		"HEROKU_API_URL": heroku.URL, "HEROKU_ID_URL": heroku.URL,
		"HEROKU_OAUTH_CLIENT_SECRET": herokufake.DefaultClientSecret})
	var stderr syncBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, "web") }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("rekey web: %v\n%s", err, stderr.String())
		}
	}()
	base := "http://127.0.0.1:" + port
	call := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
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
	c.waitFor(t, "rekey web to answer", func() bool { code, _ := call("GET", "/healthz", ""); return code == 200 })
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
