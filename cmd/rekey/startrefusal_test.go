package main

import (
	"context"
	"maps"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// TestAProcessRedisRefusesAtStartExits starts the web, worker and clock
// processes, as the real binary, on a real Redis that answers but refuses
// REDIS_URL in a way no waiting mends: a database it does not have, a
// wrong password, none where one is needed, rediss:// to a server without
// TLS, redis:// to one with TLS only. Each exits 1 with one "rekey:" line
// saying what to fix, so Heroku shows a crashed dyno; they waited for ever
// behind one redis_down line.
func TestAProcessRedisRefusesAtStartExits(t *testing.T) {
	t.Parallel()
	r := redistest.StartServerAt(t, redistest.FreePort(t)) // one database: 0
	if err := r.Client.ConfigSet(context.Background(), "requirepass", "right-password-of-the-test").Err(); err != nil {
		t.Fatal(err)
	}
	tlsOnly := redistest.StartTLSServer(t)
	for _, tc := range []struct{ name, url, want string }{
		{"no such database", "redis://:right-password-of-the-test@" + r.Addr + "/1", "REDIS_URL names database 1, which the Redis at " + r.Addr + " does not have"},
		{"wrong password", "redis://:wrong-password-of-the-test@" + r.Addr + "/0", "refuses REDIS_URL's user or password"},
		{"no password", "redis://" + r.Addr + "/0", "refuses REDIS_URL's user or password"},
		{"TLS to a plain server", "rediss://:right-password-of-the-test@" + r.Addr + "/0", "answers without TLS: use redis://"},
		{"plain to a TLS-only server", "redis://" + tlsOnly + "/0", "takes TLS connections only: use rediss://"},
	} {
		for _, process := range []string{"web", "worker", "scheduler"} {
			t.Run(tc.name+"/"+process, func(t *testing.T) {
				t.Parallel()
				vars := processVars(t, tc.url)
				cmd, _, stderr := startRekey(t, vars, func(string, string) bool { return true }, process)
				code := waitExit(t, cmd, 30*time.Second)
				lines := rekeyLines(stderr.String())
				if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
					t.Fatalf("rekey %s on %s: exit %d, lines %q; want exit 1 and one line saying %q\n%s",
						process, tc.name, code, lines, tc.want, stderr)
				}
				if strings.Contains(stderr.String(), "right-password-of-the-test") || strings.Contains(stderr.String(), "wrong-password-of-the-test") {
					t.Errorf("a password of REDIS_URL is in the output:\n%s", stderr)
				}
			})
		}
	}
}

// TestAProcessWaitsOutARedisLoading starts the processes on a server that
// answers every command LOADING, as a Redis restarting or taking over
// from a failed primary does while it reads its data: each logs redis_down
// and keeps waiting, to be stopped by SIGTERM with status 0.
func TestAProcessWaitsOutARedisLoading(t *testing.T) {
	t.Parallel()
	url := "redis://" + fakeRedis(t, func([]string) string {
		return "-LOADING Redis is loading the dataset in memory\r\n"
	}) + "/0"
	for _, process := range []string{"web", "worker", "scheduler"} {
		t.Run(process, func(t *testing.T) {
			t.Parallel()
			cmd, _, stderr := startRekey(t, processVars(t, url), func(_, stderr string) bool {
				return strings.Contains(stderr, `"message":"redis_down"`)
			}, process)
			if code := signalAndWait(t, cmd, syscall.SIGTERM); code != 0 {
				t.Errorf("rekey %s on a loading Redis: exit %d, want it waiting until SIGTERM and 0\n%s", process, code, stderr)
			}
		})
	}
}

// processVars are the variables every long-running process needs, on the
// Redis at redisURL.
func processVars(t *testing.T, redisURL string) map[string]string {
	t.Helper()
	vars, _ := webVars(t, newCLI(t))
	maps.Copy(vars, map[string]string{"REDIS_URL": redisURL, "REKEY_ISSUER_URL": "http://127.0.0.1:1",
		"REKEY_ISSUER_SECRET": "issuer-secret-of-the-test", "HEROKU_OAUTH_CLIENT_SECRET": "oauth-client-secret-of-the-test"})
	return vars
}

// waitExit waits up to d for cmd to exit and returns its status, failing
// the test (and leaving cmd to its cleanup) when it still runs.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-time.After(d):
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		t.Fatalf("rekey %s still runs %s after it started", strings.Join(cmd.Args[1:], " "), d)
		return 0
	}
}

// TestAProcessWhoseRedisUserMayNotRunScriptsExits starts the web, worker
// and clock processes, as the real binary, with a REDIS_URL user whose
// ACL refuses the scripts rekey runs (NOPERM): each exits 1 with one
// "rekey:" line naming the refusal and the ACL to give, where the worker
// compared its keys again and again for ever and the web process served
// requests that all failed.
func TestAProcessWhoseRedisUserMayNotRunScriptsExits(t *testing.T) {
	t.Parallel()
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	if err := r.Client.Do(context.Background(), "acl", "setuser", "noscripts", "on", ">noscripts-password",
		"~*", "&*", "+@all", "-@scripting").Err(); err != nil {
		t.Fatal(err)
	}
	url := "redis://noscripts:noscripts-password@" + r.Addr + "/0"
	for _, process := range []string{"web", "worker", "scheduler"} {
		t.Run(process, func(t *testing.T) {
			t.Parallel()
			cmd, _, stderr := startRekey(t, processVars(t, url), func(string, string) bool { return true }, process)
			code := waitExit(t, cmd, 30*time.Second)
			lines := rekeyLines(stderr.String())
			if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "NOPERM") || !strings.Contains(lines[0], "+@all") {
				t.Fatalf("rekey %s: exit %d, lines %q; want exit 1 and one line naming NOPERM and +@all\n%s", process, code, lines, stderr)
			}
		})
	}
}

// TestAProcessWaitsOutARefusalAfterRedisAnswered starts the clock on a
// Redis without a password, then gives that Redis one and drops its
// connections, as a password rotated under a running process does: the
// clock logs redis_down and keeps waiting, to be stopped by SIGTERM with
// status 0. Only a refusal before Redis ever answered ends a process.
func TestAProcessWaitsOutARefusalAfterRedisAnswered(t *testing.T) {
	t.Parallel()
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	cmd, _, stderr := startRekey(t, processVars(t, r.URL), func(_, stderr string) bool {
		return strings.Contains(stderr, `"message":"schedule_indexed"`)
	}, "scheduler")
	ctx := context.Background()
	if err := r.Client.ConfigSet(ctx, "requirepass", "rotated-password-of-the-test").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Do(ctx, "client", "kill", "type", "normal", "skipme", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), `"message":"redis_down"`); {
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("no redis_down in 30s:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := signalAndWait(t, cmd, syscall.SIGTERM); code != 0 || len(rekeyLines(stderr.String())) != 0 {
		t.Errorf("rekey scheduler refused after Redis answered: exit %d, want it waiting until SIGTERM and 0\n%s", code, stderr)
	}
}
