package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/worker"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// TestMain removes the binary rekeyBinary built, 50 MB in the temporary
// directory, once the package's tests end.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// rekeyBinary builds cmd/rekey once per test run, so the tests below run
// `rekey dev` as the real process a user starts.
func rekeyBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rekey-dev-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "rekey")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/rekey: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// devProcess starts `rekey dev args...` with REDIS_URL=redisURL.
func devProcess(t *testing.T, redisURL string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, rekeyBinary(t), append([]string{"dev"}, args...)...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, stdout, stderr
}

// quickDev are flags that make a `rekey dev` run take seconds.
var quickDev = []string{"--instances", "3", "--grace", "3s", "--restart-delay", "1s"}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestDevRefusesARedisWithARegisteredInstance(t *testing.T) {
	c := newCLI(t)
	c.register(t, 2)
	before := c.snapshot(t)
	cmd, stdout, stderr := devProcess(t, c.r.URL, append([]string{"--once"}, quickDev...)...)
	err := cmd.Run()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	msg := stderr.String()
	for _, want := range []string{"2 instances registered by something else, such as inst-0000",
		"rekey dev changed nothing", "--allow-foreign-redis"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msg)
		}
	}
	after := c.snapshot(t)
	if len(after) != len(before) {
		t.Fatalf("keys: %d before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("key %s changed", k)
		}
	}
}

// runWorkerLanes runs rekey's asynq servers (internal/worker's lanes) on r
// in this process, as a real `rekey worker` would, until the test ends,
// and waits for their heartbeats. Its handler does nothing.
func runWorkerLanes(t *testing.T, r *redistest.Redis) {
	t.Helper()
	w, err := worker.New(worker.Params{Redis: r.Client, Logger: zerolog.Nop(),
		Handler: asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	insp := asynq.NewInspectorFromRedisClient(r.Client)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if s, err := insp.Servers(); err == nil && len(s) == len(worker.Lanes()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker's lanes wrote no heartbeats within 10s")
		}
	}
}

// TestDevRefusesARedisWithLiveWorkers: with --allow-foreign-redis, a
// Redis where a worker's asynq servers are alive is still refused (exit 2,
// as a missing flag), naming them by host and pid, and nothing is written;
// --allow-live-workers runs beside them.
func TestDevRefusesARedisWithLiveWorkers(t *testing.T) {
	c := newCLI(t)
	runWorkerLanes(t, c.r)
	args := append([]string{"--once", "--allow-foreign-redis", "--timeout", "20s"}, quickDev...)
	cmd, stdout, stderr := devProcess(t, c.r.URL, args...)
	err := cmd.Run()
	if code := exitCode(err); code != 2 {
		t.Fatalf("exit code %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	host, _ := os.Hostname()
	for _, want := range []string{fmt.Sprintf("has 3 live asynq servers polling rekey's queues, in 1 process (%s pid %d)", host, os.Getpid()),
		"rekey dev changed nothing", "--allow-live-workers"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	t.Logf("refusal:\n%s", stderr)
	if mark, err := c.st.DevMark(context.Background()); err != nil || mark.Claimed {
		t.Errorf("the refused Redis was marked as dev's (%v)", err)
	}

	cmd, _, stderr = devProcess(t, c.r.URL, append(args, "--allow-live-workers")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c.waitFor(t, "dev to run beside the live workers", func() bool {
		return strings.Contains(stderr.String(), "REDIS_URL has 3 live asynq servers polling rekey's queues, in 1 process") &&
			strings.Contains(stderr.String(), "running beside them anyway (--allow-live-workers)")
	})
}

func TestDevOnceTwiceOnOneRedis(t *testing.T) {
	r := redistest.New(t)
	for run := 1; run <= 2; run++ {
		cmd, stdout, stderr := devProcess(t, r.URL, append([]string{"--once"}, quickDev...)...)
		if err := cmd.Run(); err != nil {
			t.Fatalf("run %d: %v\nstdout:\n%s\nstderr:\n%s", run, err, stdout, stderr)
		}
		if !strings.Contains(stdout.String(), "rotated                  3 of 3") {
			t.Fatalf("run %d: summary:\n%s", run, stdout)
		}
		// It names the Redis it uses, which may be the one of a real app
		// the shell exported REDIS_URL for, but never its password.
		if opt := r.Client.Options(); !strings.Contains(stderr.String(), fmt.Sprintf("rekey dev: using REDIS_URL (%s/%d)", opt.Addr, opt.DB)) ||
			(opt.Password != "" && strings.Contains(stderr.String(), opt.Password)) {
			t.Errorf("run %d did not name the Redis of REDIS_URL, or named its password:\n%s", run, stderr)
		}
		if run == 2 && !strings.Contains(stderr.String(), "holds only an earlier rekey dev run's data") {
			t.Errorf("run 2 did not say it cleared the earlier run:\n%s", stderr)
		}
	}
}

// accessLine finds a line of the access details dev prints.
func accessLine(t *testing.T, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  ` + label + `\s+(.+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", label, out)
	}
	return m[1]
}

// startDevAccess starts `rekey dev` on webAddr and reads the access lines
// it prints; the process is killed when the test ends.
func startDevAccess(t *testing.T, webAddr string) (cmd *exec.Cmd, access string, stderr *syncBuffer) {
	t.Helper()
	r := redistest.New(t)
	cmd, _, stderr = devProcess(t, r.URL, append([]string{"--web-addr", webAddr}, quickDev...)...)
	cmd.Stdout = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, readAccess(t, out, stderr), stderr
}

func TestDevServesTheWebProcess(t *testing.T) {
	cmd, access, stderr := startDevAccess(t, "127.0.0.1:0")

	login := strings.Fields(accessLine(t, access, "customer dashboard"))[0]
	password := regexp.MustCompile(`password (\S+)\)`).FindStringSubmatch(accessLine(t, access, "monitoring"))[1]
	token := regexp.MustCompile(`Bearer (\S+)\)`).FindStringSubmatch(accessLine(t, access, "metrics"))[1]
	base := strings.Fields(accessLine(t, access, "monitoring"))[0]
	base = strings.TrimSuffix(base, "/monitoring")

	t.Run("dashboard login link", func(t *testing.T) { checkLogin(t, login) })
	t.Run("monitoring", func(t *testing.T) {
		get(t, base+"/monitoring", nil, http.StatusUnauthorized)
		get(t, base+"/monitoring/", func(r *http.Request) { r.SetBasicAuth("dev", password) }, http.StatusOK)
	})
	t.Run("metrics", func(t *testing.T) {
		get(t, base+"/metrics", nil, http.StatusUnauthorized)
		body := get(t, base+"/metrics", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, http.StatusOK)
		if !strings.Contains(body, "rekey_redis_up 1") {
			t.Errorf("/metrics lacks rekey_redis_up 1:\n%.500s", body)
		}
	})
	t.Run("curl line", func(t *testing.T) {
		line := accessLine(t, access, "try it")
		res, err := exec.Command("sh", "-c", line+" -w ' HTTP %{http_code}'").CombinedOutput()
		if err != nil || !strings.HasSuffix(string(res), "HTTP 200") || !strings.Contains(string(res), `"current_credential_id"`) {
			t.Fatalf("%s: %v\n%s", line, err, res)
		}
	})
	t.Run("CLI line", func(t *testing.T) {
		// The operator commands reach this run's Redis with its keys, and
		// quote the grace dev's worker announces (3s), not their default.
		line := strings.Replace(accessLine(t, access, "CLI"), " rekey ", " "+rekeyBinary(t)+" ", 1)
		sh := func(command string) string {
			c := exec.Command("sh", "-c", command)
			c.Env = cmd.Env // REDIS_URL, which the line names
			res, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", command, err, res)
			}
			return string(res)
		}
		if out := sh(line); !strings.Contains(out, "current credential:") {
			t.Errorf("%s printed no instance:\n%s", line, out)
		}
		// The worker announces itself as it starts, beside the access text.
		plan := strings.Replace(line, " instances show ", " rotate --plan ", 1)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out := sh(plan)
			if strings.Contains(out, "else 3s (REKEY_GRACE") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not quote dev's grace:\n%s", plan, out)
			}
		}
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr)
	}
}

// TestDevPrintsAReachableURLForAWildcardAddr: `rekey dev --web-addr :8080`
// (or 0.0.0.0:8080, to reach it from the host of a VM or container)
// prints its links on 127.0.0.1, since browsers refuse to open the
// unspecified address (0.0.0.0, [::]), and says that it listens on every
// interface, where /dev/login signs anyone in.
func TestDevPrintsAReachableURLForAWildcardAddr(t *testing.T) {
	_, access, _ := startDevAccess(t, ":0")
	login := strings.Fields(accessLine(t, access, "customer dashboard"))[0]
	u, err := url.Parse(login)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		t.Errorf("dev prints the dashboard link %s, on the unspecified address, which browsers do not open; want a loopback host or the machine's name", login)
	}
	if !strings.Contains(access, "every interface") || !strings.Contains(access, "signs anyone in") {
		t.Errorf("dev listening on every interface does not say so, nor that /dev/login signs anyone in:\n%s", access)
	}
	resp, err := http.Get(login)
	if err != nil {
		t.Fatalf("the printed link %s does not open: %v", login, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d, want 200", login, resp.StatusCode)
	}
}

// readAccess reads dev's stdout up to the end of the access details.
func readAccess(t *testing.T, out io.Reader, stderr *syncBuffer) string {
	t.Helper()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var b strings.Builder
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev ended before printing its access details:\n%s\nstderr:\n%s", b.String(), stderr)
			}
			b.WriteString(l + "\n")
			if strings.HasPrefix(l, "  CLI") {
				go func() { // keep reading, so dev never blocks on a full pipe
					for range lines {
					}
				}()
				return b.String()
			}
		case <-deadline:
			t.Fatalf("no access details after 2 minutes:\n%s\nstderr:\n%s", b.String(), stderr)
		}
	}
}

// checkLogin follows the dashboard link as a browser does: it loads the
// page, posts its form to /sso/login and lands on the dashboard.
func checkLogin(t *testing.T, link string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	page := get(t, link, nil, http.StatusOK)
	fields := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
		fields.Set(m[1], m[2])
	}
	action := regexp.MustCompile(`<form method="post" action="([^"]+)">`).FindStringSubmatch(page)
	if action == nil || fields.Get("resource_token") == "" {
		t.Fatalf("no signed SSO form in:\n%s", page)
	}
	u, _ := url.Parse(link)
	res, err := client.PostForm(u.Scheme+"://"+u.Host+action[1], fields)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/dashboard" {
		t.Fatalf("sign-in landed on %s with %d:\n%.800s", res.Request.URL, res.StatusCode, body)
	}
}

// get fetches u and checks the status.
func get(t *testing.T, u string, set func(*http.Request), want int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(req)
	}
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d:\n%.500s", u, res.StatusCode, want, body)
	}
	return string(body)
}

// A run stopped before the grace ends (Ctrl-C) saw no hold yet: its
// summary says what the one-off dyno was to do, not that it did; one that
// ran to the end says it did.
func TestDevSummaryOfAHoldTheRunDidNotReach(t *testing.T) {
	r := redistest.New(t)
	cmd, stdout, stderr := devProcess(t, r.URL, "--once", "--instances", "3", "--grace", "60s", "--restart-delay", "1s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "rotated 3/3") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); exitCode(err) != exitInterrupted {
		t.Fatalf("a run stopped by Ctrl-C: %v, want exit %d\nstdout:\n%s\nstderr:\n%s", err, exitInterrupted, stdout, stderr)
	}
	if !strings.Contains(stdout.String(), "was to keep using the old credential for") || strings.Contains(stdout.String(), "kept using") {
		t.Errorf("summary of a run stopped before the grace ended:\n%s", stdout)
	}
	cmd, stdout, stderr = devProcess(t, r.URL, append([]string{"--once"}, quickDev...)...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout.String(), "kept using the old credential for") {
		t.Errorf("summary of a whole run:\n%s", stdout)
	}
}

// TestDevServesItsBaseURL: the first URL `rekey dev` prints, the web
// process's base, opens the customer dashboard's sign-in rather than
// answering 404 to whoever opens it first.
func TestDevServesItsBaseURL(t *testing.T) {
	_, access, _ := startDevAccess(t, "127.0.0.1:0")
	m := regexp.MustCompile(`serves the web process at (\S+) until`).FindStringSubmatch(access)
	if m == nil {
		t.Fatalf("no base URL in:\n%s", access)
	}
	body := get(t, m[1], nil, http.StatusOK)
	if !strings.Contains(body, `action="/sso/login"`) {
		t.Errorf("GET %s is not the dashboard's sign-in:\n%.500s", m[1], body)
	}
	get(t, m[1]+"/", nil, http.StatusOK)
}

// TestDevWebAddrTakenChangesNothing: the --web-addr port is taken (the
// real app's web process on it). rekey dev says so and exits 1 before it
// writes to REDIS_URL or starts anything, not once its sample instances
// are provisioned there.
func TestDevWebAddrTakenChangesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r := redistest.New(t)
	cmd, _, stderr := devProcess(t, r.URL, append([]string{"--web-addr", taken.Addr().String()}, quickDev...)...)
	err = cmd.Run()
	if code := exitCode(err); code != 1 || !strings.Contains(stderr.String(), "web: listen on "+taken.Addr().String()+" (choose another with --web-addr)") {
		t.Fatalf("exit %d, want 1 naming the taken address:\n%s", code, stderr)
	}
	if strings.Contains(stderr.String(), "provisioned") {
		t.Errorf("dev provisioned its instances before finding the address taken:\n%s", stderr)
	}
	if dump := redistest.Dump(t, r); dump != "" {
		t.Errorf("REDIS_URL changed:\n%s", dump)
	}
}

// TestDevOfOneInstanceSaysOne: `rekey dev --instances 1` says "1
// instance" and "1 rotation", not "1 instances" and "1 rotations".
func TestDevOfOneInstanceSaysOne(t *testing.T) {
	r := redistest.New(t)
	cmd, stdout, stderr := devProcess(t, r.URL, "--once", "--instances", "1", "--grace", "3s", "--restart-delay", "1s")
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"rekey dev: provisioned 1 instance (1 V3, 0 V1, 0 in Private Spaces)\n", ": 1 rotation enqueued, grace 3s"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
