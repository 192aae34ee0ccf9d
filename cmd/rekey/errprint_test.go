package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

func TestConfigErrorsPrintOneLinePerVariable(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"PORT": "eighty", "REKEY_GRACE": "two hours", "REKEY_RATE_SCOPE": "galaxy"}
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	err := run(context.Background(), env, []string{"worker"})
	if err == nil {
		t.Fatal("rekey worker accepted three bad variables")
	}
	var out bytes.Buffer
	printError(&out, err)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("printed %q; want three lines", out.String())
	}
	for i, name := range []string{"PORT", "REKEY_GRACE", "REKEY_RATE_SCOPE"} {
		if !strings.HasPrefix(lines[i], "rekey: "+name+" must be") {
			t.Errorf("line %d = %q; want rekey: and the sentence for %s", i+1, lines[i], name)
		}
	}
}

// A misspelt REKEY_ setting is named on stderr, with the one meant, by any
// command: otherwise it would be ignored without a word.
func TestMisspeltSettingIsNamed(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	env := c.env()
	env.names = []string{"PATH", "REDIS_URL", "REKEY_GRACEE"}
	if err := runCommand(context.Background(), env, "revocations", "dead"); err != nil {
		t.Fatal(err)
	}
	if got := c.stderr.String(); !strings.Contains(got, "unknown_setting") ||
		!strings.Contains(got, "REKEY_GRACEE is not a setting rekey reads; it is ignored (did you mean REKEY_GRACE?)") {
		t.Errorf("stderr = %q; want the misspelt setting named", got)
	}
}

// A grace floor under REKEY_GRACE's own or under five minutes is named at
// the start of every long-running process, as a short_grace warning in its
// log, with the variables and the floor and no secret of the environment.
func TestShortGraceIsWarnedOfAtStartUp(t *testing.T) {
	c := newCLI(t)
	port := fmt.Sprint(redistest.FreePort(t))
	const secret = "s3cret-that-must-never-be-logged"
	vars := c.vars()
	maps.Copy(vars, map[string]string{"REKEY_GRACE": "2m", "PORT": port,
		"REKEY_ISSUER_URL": "http://127.0.0.1:1", "REKEY_ISSUER_SECRET": secret, "HEROKU_OAUTH_CLIENT_SECRET": secret,
		"REKEY_API_TOKEN": secret, "REKEY_DASHBOARD_PASSWORD": secret, "HEROKU_SSO_SALT": secret})
	for _, process := range []string{"web", "worker", "scheduler"} {
		t.Run(process, func(t *testing.T) {
			var stderr syncBuffer
			env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
				stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- runCommand(ctx, env, process) }()
			c.waitFor(t, "the short_grace warning", func() bool { return strings.Contains(stderr.String(), `"message":"short_grace"`) })
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("rekey %s: %v\n%s", process, err, stderr.String())
			}
			got := stderr.String()
			if !strings.Contains(got, `"level":"warn"`) || !strings.Contains(got, "REKEY_GRACE (2m0s) is shorter than REKEY_MIN_GRACE (10m0s), "+
				"so the grace floor is 2m0s") {
				t.Errorf("the warning does not name the variables and the floor:\n%s", got)
			}
			if strings.Contains(got, secret) {
				t.Errorf("a secret reached the log:\n%s", got)
			}
		})
	}
}

// startedWarning runs `rekey process` on vars until it logs the warning
// named message, stops it, and returns what it logged.
func startedWarning(t *testing.T, c *cli, vars map[string]string, process, message string) string {
	t.Helper()
	var stderr syncBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, process) }()
	c.waitFor(t, "the "+message+" warning", func() bool {
		return strings.Contains(stderr.String(), `"message":"`+message+`"`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("rekey %s: %v\n%s", process, err, stderr.String())
	}
	return stderr.String()
}

// A REKEY_ISSUER_SECRET shorter than 16 bytes is named at a worker's
// start, as a weak_issuer_secret warning in its log, and never quoted.
func TestWeakIssuerSecretIsWarnedOfAtStartUp(t *testing.T) {
	c := newCLI(t)
	const weak = "hunter2-pw"
	vars := c.vars()
	maps.Copy(vars, map[string]string{"REKEY_ISSUER_URL": "http://127.0.0.1:1", "REKEY_ISSUER_SECRET": weak,
		"HEROKU_OAUTH_CLIENT_SECRET": "oauth-client-secret-of-the-test"})
	got := startedWarning(t, c, vars, "worker", "weak_issuer_secret")
	if !strings.Contains(got, "REKEY_ISSUER_SECRET is shorter than 16 bytes") || strings.Contains(got, weak) {
		t.Errorf("the warning does not name the variable, or quotes the secret:\n%s", got)
	}
}

// A web process without HEROKU_OAUTH_CLIENT_SECRET or V1's credentials
// starts, but says at start that every V3 provisioning will be answered
// 503.
func TestWebWithoutOAuthClientSecretSaysSo(t *testing.T) {
	c := newCLI(t)
	port := fmt.Sprint(redistest.FreePort(t))
	vars := c.vars()
	maps.Copy(vars, map[string]string{"PORT": port, "REKEY_API_TOKEN": "api-token-of-the-test-0123",
		"REKEY_DASHBOARD_PASSWORD": "dashboard-password", "HEROKU_SSO_SALT": "sso-salt-of-the-test"})
	got := startedWarning(t, c, vars, "web", "no_oauth_client_secret")
	if !strings.Contains(got, "every V3 provisioning (an oauth_grant to exchange) is answered 503") {
		t.Errorf("the warning does not say what fails:\n%s", got)
	}
}

// Console log lines (a one-shot command's) on a stderr that is no terminal
// carry no colour codes: they land in files and CI logs.
func TestConsoleLogHasNoColourOffATerminal(t *testing.T) {
	vars := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0",
		"REKEY_ENCRYPTION_KEYS": base64.StdEncoding.EncodeToString(testKey), "REKEY_GRAC": "1h"}
	var stderr syncBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		names: []string{"REKEY_GRAC"}, stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr}
	_ = runCommand(context.Background(), env, "holds", "list")
	if got := stderr.String(); !strings.Contains(got, "unknown_setting") || strings.Contains(got, "\x1b[") {
		t.Errorf("want the unknown_setting line without colour codes:\n%q", got)
	}
}

// A one-shot command whose REDIS_URL answers nothing fails with one error
// that says what to do, not after go-redis's line per failed dial.
func TestUnreachableRedisIsOneError(t *testing.T) {
	vars := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0",
		"REKEY_ENCRYPTION_KEYS": base64.StdEncoding.EncodeToString(testKey)}
	var stderr syncBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr}
	err := runCommand(context.Background(), env, "holds", "list")
	if err == nil || !strings.Contains(err.Error(), "connect to REDIS_URL (127.0.0.1:1)") ||
		!strings.Contains(err.Error(), "no Redis answered there") {
		t.Fatalf("err = %v, want the address and what to do", err)
	}
	if got := stderr.String(); got != "" {
		t.Errorf("stderr holds more than the error:\n%s", got)
	}
	// rekey dev runs without REDIS_URL, and says so.
	err = runCommand(context.Background(), env, "dev", "--once")
	if err == nil || !strings.Contains(err.Error(), "connect to REDIS_URL (127.0.0.1:1)") ||
		!strings.Contains(err.Error(), "unset REDIS_URL and rekey dev runs on an embedded Redis") {
		t.Fatalf("rekey dev: err = %v, want the address and what to do", err)
	}
}

// A one-shot command whose REDIS_URL's scheme disagrees with the server's
// TLS says which scheme to use, rather than "EOF" or a timeout.
func TestRedisURLSchemeThatDisagreesWithTLSSaysWhich(t *testing.T) {
	plain := redistest.StartServerAt(t, redistest.FreePort(t)).Addr
	tlsOnly := redistest.StartTLSServer(t)
	for _, tc := range []struct{ url, want string }{
		{"redis://" + tlsOnly + "/0", "takes TLS connections only: use rediss://"},
		// Without retries and with a short dial, as a test can afford.
		{"rediss://" + plain + "/0?max_retries=-1&dial_timeout=1s&read_timeout=1s", "answers without TLS: use redis://"},
	} {
		vars := map[string]string{"REDIS_URL": tc.url, "REKEY_ENCRYPTION_KEYS": base64.StdEncoding.EncodeToString(testKey)}
		env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
			stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
		err := runCommand(context.Background(), env, "holds", "list")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "no Redis answered there") {
			t.Errorf("REDIS_URL %s: err = %v, want %q", tc.url, err, tc.want)
		}
	}
}

// A worker started with REKEY_ENCRYPTION_KEYS that lack the key the
// fingerprint key was sealed under (a new key set without the old one)
// would fail every rotation it took: it refuses to start, saying which
// variable to fix, rather than take the fleet's tasks.
func TestWorkerWithoutTheFingerprintKeyRefusesToStart(t *testing.T) {
	c := newCLI(t)
	if err := store.New(c.r.Client, otherSealer(t)).CheckFingerprintKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := runWorkerCommand(ctx, c)
	if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), "takes no task") ||
		!strings.Contains(err.Error(), "REKEY_ENCRYPTION_KEYS") {
		t.Errorf("rekey worker without the fingerprint key's key: %v (timed out: %v), want a refusal naming REKEY_ENCRYPTION_KEYS",
			err, ctx.Err() != nil)
	}
}

// A database a `rekey dev` run used holds a fingerprint key sealed under
// dev's own key: a worker of the fleet started there says so, since the
// usual advice (add back the key it was sealed under) cannot be followed.
func TestWorkerOnADevDatabaseSaysSo(t *testing.T) {
	c := newCLI(t)
	dev := store.New(c.r.Client, otherSealer(t))
	if err := dev.MarkDev(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := dev.CheckFingerprintKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := runWorkerCommand(ctx, c)
	if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), "holds a 'rekey dev' run's data") {
		t.Errorf("rekey worker on a database rekey dev used: %v (timed out: %v), want a refusal naming rekey dev",
			err, ctx.Err() != nil)
	}
}

// The first worker of a fleet makes the fingerprint key, under its own
// keys. Started with keys other than the fleet's (what a web process
// registered instances under, or what a running process holds), it would
// make the key the rest of the fleet cannot open, and every other worker
// would refuse to start: it takes no task and makes nothing, saying why,
// and compares again, so that it starts once what kept it waiting is gone
// (here: the values re-registered under its keys, the process stopped).
// With nothing stored yet, it starts and makes the key.
func TestTheFirstWorkerChecksItsKeysAreTheFleets(t *testing.T) {
	keysRecheck.Store(int64(200 * time.Millisecond))
	t.Cleanup(func() { keysRecheck.Store(int64(30 * time.Second)) })
	ctx := context.Background()
	register := func(t *testing.T, st *store.Store) {
		t.Helper()
		tok := &heroku.Token{AccessToken: secret.New("at-1"), RefreshToken: secret.New("rt-1"), ExpiresAt: time.Now().Add(time.Hour)}
		if err := st.Register(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3,
			ConfigVars: []string{"MYADDON_URL"}}, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name         string
		fleet, clear func(*testing.T, *cli, *store.Store)
		why          string
	}{
		{"instances registered under other keys",
			func(t *testing.T, _ *cli, web *store.Store) { register(t, web) },
			func(t *testing.T, c *cli, _ *store.Store) { register(t, c.st) },
			"no stored sealed value opens with its keys (1 tried)"},
		{"a process running on other keys",
			func(t *testing.T, _ *cli, web *store.Store) {
				if err := web.AnnounceKeyring(ctx, "web.1", time.Minute); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, _ *cli, web *store.Store) {
				if err := web.WithdrawKeyring(ctx, "web.1"); err != nil {
					t.Fatal(err)
				}
			},
			"web.1 does not hold key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			web := store.New(c.r.Client, otherSealer(t))
			tc.fleet(t, c, web)
			w := startWorkerCommand(t, c, c.vars())
			w.waitLog(t, `"keys_not_the_fleets"`, tc.why)
			w.waitLog(t, `"keys_not_the_fleets"`, tc.why) // and again, announcing nothing meanwhile
			if n := c.r.Client.Exists(ctx, "rekey:fingerprint_key").Val(); n != 0 {
				t.Fatal("the waiting worker made the fingerprint key")
			}
			// Announced, its keys would fail the fleet's own processes'
			// comparison: the web's PUTs, a worker of the fleet starting.
			if announced(t, c, "worker on ") {
				t.Fatal("the waiting worker announced its keys")
			}
			tc.clear(t, c, web)
			w.waitFingerprintKey(t, c)
			w.waitFor(t, "announcing its keys once they passed", func() bool { return announced(t, c, "worker on ") })
		})
	}
	t.Run("Redis refuses the comparison", func(t *testing.T) {
		// A Redis error is no verdict: the worker takes no task and makes
		// no key until a comparison is made.
		c := newCLI(t)
		register(t, store.New(c.r.Client, otherSealer(t)))
		if err := c.r.Client.Do(ctx, "ACL", "SETUSER", "noscan", "on", ">pw", "~*", "&*", "+@all", "-scan").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.r.Client.Do(context.Background(), "ACL", "DELUSER", "noscan") })
		u, err := url.Parse(c.r.URL)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("noscan", "pw")
		vars := c.vars()
		vars["REDIS_URL"] = u.String()
		w := startWorkerCommand(t, c, vars)
		w.waitLog(t, `"keys_check_failed"`, "")
		w.waitLog(t, `"keys_check_failed"`, "") // and again
		if n := c.r.Client.Exists(ctx, "rekey:fingerprint_key").Val(); n != 0 {
			t.Error("a worker whose comparison failed made the fingerprint key")
		}
		if strings.Contains(w.stderr.String(), `"task_`) {
			t.Errorf("a worker whose comparison failed ran a task:\n%s", w.stderr)
		}
	})
	t.Run("nothing stored", func(t *testing.T) {
		c := newCLI(t)
		startWorkerCommand(t, c, c.vars()).waitFingerprintKey(t, c)
	})
}

// announced reports whether a process whose name starts with prefix
// announces its keys.
func announced(t *testing.T, c *cli, prefix string) bool {
	t.Helper()
	rings, err := c.st.Keyrings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rings {
		if strings.HasPrefix(r.Process, prefix) {
			return true
		}
	}
	return false
}

// workerCommand is a `rekey worker` a test started.
type workerCommand struct {
	stderr *syncBuffer
	done   chan error
}

// startWorkerCommand starts `rekey worker` with vars and the issuer and
// OAuth settings it needs; it is stopped when the test ends.
func startWorkerCommand(t *testing.T, c *cli, vars map[string]string) *workerCommand {
	t.Helper()
	env, stderr := workerEnv(vars)
	w := &workerCommand{stderr: stderr, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { w.done <- runCommand(ctx, env, "worker") }()
	t.Cleanup(func() {
		cancel()
		if err := <-w.done; err != nil {
			t.Errorf("rekey worker stopped: %v", err)
		}
	})
	return w
}

// waitLog waits until the worker has logged one more line holding event
// and want than it had when called, and fails the test if it stops first.
func (w *workerCommand) waitLog(t *testing.T, event, want string) {
	t.Helper()
	count := func() int {
		n := 0
		for _, line := range strings.Split(w.stderr.String(), "\n") {
			if strings.Contains(line, event) && strings.Contains(line, want) {
				n++
			}
		}
		return n
	}
	before := count()
	w.waitFor(t, fmt.Sprintf("logging %s %q", event, want), func() bool { return count() > before })
}

// waitFingerprintKey waits until the worker has made a fingerprint key c's
// keys open, and fails the test if it stops first.
func (w *workerCommand) waitFingerprintKey(t *testing.T, c *cli) {
	t.Helper()
	w.waitFor(t, "making the fingerprint key", func() bool {
		return c.r.Client.Exists(context.Background(), "rekey:fingerprint_key").Val() == 1
	})
	if err := c.st.CheckFingerprintKey(context.Background()); err != nil {
		t.Errorf("the fingerprint key the worker made: %v, want one its keys open", err)
	}
}

// waitFor polls done for up to 30 s, and fails the test if the worker
// stops first or done never holds.
func (w *workerCommand) waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		select {
		case err := <-w.done:
			w.done <- err
			t.Fatalf("rekey worker stopped (%v) before %s:\n%s", err, what, w.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rekey worker was not done %s in 30 s:\n%s", what, w.stderr)
		}
	}
}

// otherSealer seals under a key other than testKey.
func otherSealer(t *testing.T) *seal.Sealer {
	t.Helper()
	other, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return other
}

// runWorkerCommand runs `rekey worker` on c's Redis and keys until ctx ends
// or it stops.
func runWorkerCommand(ctx context.Context, c *cli) error {
	env, _ := workerEnv(c.vars())
	return runCommand(ctx, env, "worker")
}

// workerEnv is the environment of a `rekey worker` on vars and the issuer
// and OAuth settings it needs, and the buffer its stderr goes to.
func workerEnv(vars map[string]string) (*environ, *syncBuffer) {
	maps.Copy(vars, map[string]string{"REKEY_ISSUER_URL": "http://127.0.0.1:1", "REKEY_ISSUER_SECRET": "issuer-secret-of-the-test",
		"HEROKU_OAUTH_CLIENT_SECRET": "oauth-client-secret-of-the-test"})
	stderr := &syncBuffer{}
	return &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: stderr}, stderr
}
