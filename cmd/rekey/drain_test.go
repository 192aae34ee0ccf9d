package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// webVars are c's variables and what `rekey web` needs besides, on a free
// port, which it returns.
func webVars(t *testing.T, c *cli) (map[string]string, string) {
	t.Helper()
	port := fmt.Sprint(redistest.FreePort(t))
	vars := c.vars()
	maps.Copy(vars, map[string]string{"PORT": port, "REKEY_API_TOKEN": "api-token-of-the-test-0123",
		"REKEY_DASHBOARD_PASSWORD": "dashboard-password", "HEROKU_SSO_SALT": "sso-salt-of-the-test"})
	return vars, port
}

// slowClient opens a connection to the web process on port and sends a
// request to /healthz whose announced body never comes: once the handler
// has answered (its write to Redis, rekey:health, is there) the server
// reads on for the body before it sends the answer, keeping the connection
// active until the client hangs up.
func slowClient(t *testing.T, c *cli, port string) {
	t.Helper()
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: rekey\r\nContent-Length: 100\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "the /healthz handler's write", func() bool {
		return c.r.Client.Exists(context.Background(), "rekey:health").Val() == 1
	})
}

// TestWebStoppedWithASlowClientExitsCleanly stops `rekey web` while a
// client keeps a request open past the shutdown's deadline: the process
// cuts it off, says so (web_shutdown_forced, one connection cut) and ends
// without error, as a Procfile process stopped by SIGTERM does.
func TestWebStoppedWithASlowClientExitsCleanly(t *testing.T) {
	defer func(d time.Duration) { shutdownTimeout = d }(shutdownTimeout)
	shutdownTimeout = 300 * time.Millisecond
	c := newCLI(t)
	vars, port := webVars(t, c)
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: c.stdout, stderr: c.stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, "web") }()
	c.waitFor(t, "web listening", func() bool { return strings.Contains(c.stderr.String(), "web listening") })
	slowClient(t, c, port)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("rekey web stopped with a slow client: %v, want no error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rekey web still runs 20s after its stop")
	}
	log := c.stderr.String()
	if !strings.Contains(log, `"connections_cut":1`) || !strings.Contains(log, "web_shutdown_forced") {
		t.Errorf("no web_shutdown_forced line with one connection cut:\n%s", log)
	}
	if !strings.Contains(log, `"open_connections":1`) {
		t.Errorf("the shutdown line does not say what it waits for:\n%s", log)
	}
}

// TestSecondSignalExitsAtOnce sends each signal rekey stops on twice: the
// first ends the context, naming the signal; the second exits at once
// with 128 + its number and one line saying so.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143, syscall.SIGHUP: 129} {
		t.Run(signalName(sig), func(t *testing.T) {
			var stderr syncBuffer
			exited := make(chan int, 1)
			ctx, stop := notifyContext(context.Background(), &stderr, func(code int) { exited <- code }, sig)
			defer stop()
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			<-ctx.Done()
			var s *signalError
			if !errors.As(context.Cause(ctx), &s) || s.sig != sig {
				t.Fatalf("cause %v, want the signal %s", context.Cause(ctx), sig)
			}
			select {
			case code := <-exited:
				t.Fatalf("exited %d at the first signal", code)
			case <-time.After(50 * time.Millisecond):
			}
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-exited:
				line := "rekey: " + signalName(sig) + " again: exiting at once, without waiting for the drain\n"
				if code != want || stderr.String() != line {
					t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), want, line)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no exit 10s after the second signal")
			}
		})
	}
}

// TestSecondSIGTERMEndsADrainingWeb sends SIGTERM twice to the real binary
// serving a slow client: the second ends the drain at once, with status
// 143, where the first alone would wait up to the shutdown's deadline.
func TestSecondSIGTERMEndsADrainingWeb(t *testing.T) {
	c := newCLI(t)
	vars, port := webVars(t, c)
	cmd, _, stderr := startRekey(t, vars, func(_, stderr string) bool { return strings.Contains(stderr, "web listening") }, "web")
	slowClient(t, c, port)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "web shutting down", func() bool { return strings.Contains(stderr.String(), "web shutting down") })
	start := time.Now()
	code := signalAndWait(t, cmd, syscall.SIGTERM)
	if code != 143 || time.Since(start) > 10*time.Second ||
		!strings.Contains(stderr.String(), "rekey: SIGTERM again: exiting at once") {
		t.Errorf("exit %d after %v, stderr:\n%s\nwant 143 at once and a line saying so", code, time.Since(start), stderr)
	}
}

// TestSIGHUPStopsAProcessLikeSIGTERM sends SIGHUP (a closed terminal) to
// the real binary's clock: it stops as on SIGTERM, exit 0, and withdraws
// its announcements rather than die and leave them to expire.
func TestSIGHUPStopsAProcessLikeSIGTERM(t *testing.T) {
	c := newCLI(t)
	cmd, _, stderr := startRekey(t, c.vars(), func(_, stderr string) bool { return strings.Contains(stderr, "schedule_indexed") },
		"scheduler")
	if code := signalAndWait(t, cmd, syscall.SIGHUP); code != 0 {
		t.Errorf("rekey scheduler on SIGHUP: exit %d, stderr:\n%s\nwant 0, as on SIGTERM", code, stderr)
	}
	keyrings, err := c.st.Keyrings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keyrings) != 0 {
		t.Errorf("announcements left after SIGHUP: %v", keyrings)
	}
}
