package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
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

// stoppedBy watches sig as a command does (notifyContext), sends it once
// and waits for the context to end; exited gets the status a second
// signal exits with, and stderr what it says.
func stoppedBy(t *testing.T, sig syscall.Signal) (ctx context.Context, exited chan int, stderr *syncBuffer) {
	t.Helper()
	stderr, exited = &syncBuffer{}, make(chan int, 1)
	ctx, stop := notifyContext(context.Background(), stderr, func(code int) { exited <- code }, sig)
	t.Cleanup(stop)
	signalSelf(t, sig)
	<-ctx.Done()
	return ctx, exited, stderr
}

// signalSelf sends sig to this process.
func signalSelf(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
}

// TestSecondSignalExitsAtOnce sends each signal rekey stops on twice: the
// first ends the context, naming the signal; the second exits at once
// with 128 + its number and one line saying so.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143, syscall.SIGHUP: 129} {
		t.Run(signalName(sig), func(t *testing.T) {
			ctx, exited, stderr := stoppedBy(t, sig)
			var s *signalError
			if !errors.As(context.Cause(ctx), &s) || s.sig != sig {
				t.Fatalf("cause %v, want the signal %s", context.Cause(ctx), sig)
			}
			select {
			case code := <-exited:
				t.Fatalf("exited %d at the first signal", code)
			case <-time.After(echoWindow + 50*time.Millisecond):
			}
			signalSelf(t, sig)
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

// TestASignalDeliveredTwiceIsOneStop plays GNU timeout, which sends its
// signal to the process and then to its process group: the same signal
// twice within microseconds is one stop, and the drain goes on; the same
// signal once more, later, is an operator's second and exits at once.
func TestASignalDeliveredTwiceIsOneStop(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(signalName(sig), func(t *testing.T) {
			_, exited, stderr := stoppedBy(t, sig)
			signalSelf(t, sig)
			select {
			case code := <-exited:
				t.Fatalf("exited %d at the signal's second delivery, stderr %q: want the drain to go on", code, stderr.String())
			case <-time.After(echoWindow + 100*time.Millisecond):
			}
			signalSelf(t, sig)
			select {
			case code := <-exited:
				if code != signalStatus(sig) {
					t.Errorf("exit %d at the operator's second signal, want %d", code, signalStatus(sig))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no exit 10s after the operator's second signal")
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
	time.Sleep(echoWindow) // a second SIGTERM sooner is the first's echo
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

// TestWebStoppedMidGrantStoresItsTokens stops `rekey web` while Heroku
// takes longer than the shutdown's deadline to answer the exchange of a
// PUT's oauth_grant. The shutdown cuts the PUT's connection off, but the
// process waits for the exchange and stores the tokens it bought before it
// exits: Heroku spent the code, and the add-on, registered, can be rotated.
func TestWebStoppedMidGrantStoresItsTokens(t *testing.T) {
	defer func(d time.Duration) { shutdownTimeout = d }(shutdownTimeout)
	shutdownTimeout = 300 * time.Millisecond
	c := newCLI(t)
	asked, answer := make(chan struct{}), make(chan struct{})
	var once sync.Once
	heroku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth/token" {
			http.NotFound(w, r)
			return
		}
		once.Do(func() { close(asked) })
		<-answer
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"4e1c3a1d-0000-4000-8000-000000000001","expires_in":28800,`+
			`"refresh_token":"4e1c3a1d-0000-4000-8000-000000000002","token_type":"Bearer","user_id":"u"}`)
	}))
	defer heroku.Close()
	release := sync.OnceFunc(func() { close(answer) })
	defer release() // before Close, which waits for the exchange's handler
	vars, port := webVars(t, c)
	maps.Copy(vars, map[string]string{"HEROKU_ID_URL": heroku.URL, "HEROKU_API_URL": heroku.URL,
		"HEROKU_OAUTH_CLIENT_SECRET": "oauth-client-secret-of-the-test"})
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: c.stdout, stderr: c.stderr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, "web") }()
	c.waitFor(t, "web listening", func() bool { return strings.Contains(c.stderr.String(), "web listening") })

	body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0",` +
		`"oauth_grant":{"code":"01234567-89ab-4cde-8f01-23456789abcd"}}`
	req, err := http.NewRequest(http.MethodPut, "http://127.0.0.1:"+port+"/api/v1/instances/inst-g", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+vars["REKEY_API_TOKEN"])
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan string, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	select {
	case <-asked:
	case a := <-answered:
		t.Fatalf("the PUT was answered before its grant's exchange: %s", a)
	case <-time.After(10 * time.Second):
		t.Fatal("no exchange of the PUT's grant within 10s")
	}
	cancel()
	c.waitFor(t, "web_shutdown_forced", func() bool { return strings.Contains(c.stderr.String(), "web_shutdown_forced") })
	select {
	case err := <-done:
		t.Fatalf("rekey web exited (%v) with a grant's exchange under way", err)
	case <-time.After(500 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("rekey web stopped mid-grant: %v, want no error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rekey web still runs 20s after the exchange was answered")
	}
	if need, err := c.st.NeedsToken(context.Background(), "inst-g"); err != nil || need {
		t.Errorf("inst-g after the stop: needs tokens %v (%v), want the exchanged ones stored", need, err)
	}
	log := c.stderr.String()
	if strings.Contains(log, "web_exit_with_grant_in_flight") || !strings.Contains(log, `"grants":1`) ||
		!strings.Contains(log, "web_waiting_for_grants") {
		t.Errorf("want a web_waiting_for_grants line for one grant and none saying one was left behind:\n%s", log)
	}
}
