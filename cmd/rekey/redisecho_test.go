package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoingRedis serves the Redis protocol on loopback until t ends,
// answering every command but PING with an error that quotes the
// command's arguments, as Redis does for a command it does not know
// ("ERR unknown command 'auth', with args beginning with: 'pw'": a
// server with AUTH renamed away, a proxy): connecting sends REDIS_URL's
// password, so every command fails with it in its error. It returns the
// redis:// URL with password in it.
func echoingRedis(t *testing.T, password string) string {
	t.Helper()
	return "redis://:" + password + "@" + fakeRedis(t, func(args []string) string {
		if strings.EqualFold(args[0], "PING") {
			return "+PONG\r\n"
		}
		return "-ERR unknown command '" + strings.ToLower(args[0]) + "', with args beginning with: '" +
			strings.Join(args[1:], "' '") + "'\r\n"
	}) + "/0"
}

// TestARedisQuotingThePasswordLeavesItInNoLineOrAnswer runs `rekey web`
// on a Redis whose errors quote the commands' arguments, the password of
// connecting included, and calls the API and /monitoring: the web
// process's log and its answers name Redis's error without REDIS_URL's
// password. The CLI and the health watcher removed it already; the
// request's error line and asynqmon's answer quoted it.
func TestARedisQuotingThePasswordLeavesItInNoLineOrAnswer(t *testing.T) {
	t.Parallel()
	const password = "redis-password-of-the-test-5f3c"
	vars, port := webVars(t, newCLI(t))
	vars["REDIS_URL"] = echoingRedis(t, password)
	cmd, stdout, stderr := startRekey(t, vars, func(_, stderr string) bool { return strings.Contains(stderr, "web listening") }, "web")
	base := "http://127.0.0.1:" + port
	var answers strings.Builder
	for _, req := range []struct{ path, user, pass, bearer string }{
		{path: "/api/v1/instances", bearer: vars["REKEY_API_TOKEN"]},
		{path: "/monitoring/api/queues", user: "op", pass: vars["REKEY_DASHBOARD_PASSWORD"]},
		{path: "/monitoring/api/queues/default/archived_tasks", user: "op", pass: vars["REKEY_DASHBOARD_PASSWORD"]},
	} {
		r, err := http.NewRequest(http.MethodGet, base+req.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if req.bearer != "" {
			r.Header.Set("Authorization", "Bearer "+req.bearer)
		} else {
			r.SetBasicAuth(req.user, req.pass)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("GET %s: %d %s, want 500", req.path, resp.StatusCode, body)
		}
		answers.WriteString(req.path + ": " + string(body) + "\n")
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), `"request failed"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no request failed line in 10s:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	signalAndWait(t, cmd, syscall.SIGINT)
	if !strings.Contains(answers.String(), "unknown command 'auth'") || !strings.Contains(stderr.String(), "unknown command 'auth'") {
		t.Fatalf("Redis's error is not shown, so the test shows nothing:\nanswers:\n%s\nlog:\n%s", &answers, stderr)
	}
	for place, text := range map[string]string{"answers": answers.String(), "log": stdout.String() + stderr.String()} {
		if strings.Contains(text, password) {
			t.Errorf("REDIS_URL's password is in the web process's %s:\n%s", place, text)
		}
	}
}
