package main

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// devEnv is an environment with no variables: rekey dev on its embedded
// Redis.
func devEnv() (*environ, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &environ{lookup: func(string) (string, bool) { return "", false }, stdin: strings.NewReader(""),
		stdout: out, stderr: errOut}, out, errOut
}

// TestDevGraceOutOfRangeIsOneUsageError: a --grace the run cannot use is
// one usage error about --grace naming its range (exit 2), not errors
// about variables the user never set; --grace 0 is refused, not taken for
// 30s.
func TestDevGraceOutOfRangeIsOneUsageError(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--grace", "500ms"}, "--grace must be at least 1s and more than twice --restart-delay (over 6s with --restart-delay 3s), got 500ms"},
		{[]string{"--grace", "500ms", "--restart-delay", "100ms"}, "--grace must be at least 1s and more than twice --restart-delay (over 200ms with --restart-delay 100ms), got 500ms"},
		{[]string{"--grace", "6s"}, "got 6s"},
		{[]string{"--grace", "0"}, "got 0s"},
		{[]string{"--restart-delay", "0"}, "--restart-delay must be positive"},
		{[]string{"--timeout", "-1s"}, "--timeout must not be negative"},
	} {
		env, _, stderr := devEnv()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := runCommand(ctx, env, "dev", append([]string{"--once", "--instances", "1"}, tt.args...)...)
		cancel()
		var printed bytes.Buffer
		code := 0
		if err != nil {
			code = report(&printed, err)
		}
		hint := printed.String()
		if code != 2 || !strings.Contains(hint, tt.want) || strings.Count(hint, "\n") != 1 || strings.Contains(hint, "REKEY_") {
			t.Errorf("rekey dev %s: exit %d, printed %q; want exit 2 and one line with %q\nstderr:\n%s",
				strings.Join(tt.args, " "), code, hint, tt.want, stderr)
		}
	}
}

// TestDevTimeoutNamesTheFlag: a run with --once that does not finish in
// time says how far it got and that --timeout gives it longer.
func TestDevTimeoutNamesTheFlag(t *testing.T) {
	env, _, stderr := devEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Past the grace, but not past the held sample's use beyond it.
	err := runCommand(ctx, env, "dev", "--once", "--instances", "2", "--grace", "3s", "--restart-delay", "1s", "--timeout", "3500ms")
	if err == nil || !strings.Contains(err.Error(), "not finished after 3.5s") || !strings.Contains(err.Error(), "give it longer with --timeout") {
		t.Fatalf("err = %v, want it to name --timeout\nstderr:\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "giving up after 3.5s (--timeout)") {
		t.Errorf("the run did not say when it gives up:\n%s", stderr)
	}
}

// TestDurationFlagErrorsShowAnExample: a duration flag without a unit, or
// with one Go does not know (d, H), is a usage error that shows how a
// duration is written, after Go's own reason.
func TestDurationFlagErrorsShowAnExample(t *testing.T) {
	const example = "; use a Go duration such as 2h or 90m"
	for _, args := range [][]string{
		{"rotate", "--grace", "2", "inst-1"},
		{"rotate", "--grace", "90d", "inst-1"},
		{"rotate", "--grace", "2H", "inst-1"},
		{"batches", "show", "bat_1", "--interval", "5"},
		{"dev", "--grace", "30"},
	} {
		env, _, _ := devEnv()
		err := runCommand(context.Background(), env, args[0], args[1:]...)
		if !isUsage(err) || !strings.Contains(err.Error(), "time: ") || !strings.Contains(err.Error(), example) {
			t.Errorf("rekey %s: %v, want a usage error with Go's reason and %q", strings.Join(args, " "), err, example)
		}
	}
}

// TestDevRefusesAFlagItsModeIgnores: --web-addr with --once (no web
// process) and --timeout without it (a run until Ctrl-C) are usage errors,
// exit 2, naming the flag, rather than accepted and ignored; so is a
// --web-addr the web process could not listen on.
func TestDevRefusesAFlagItsModeIgnores(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--once", "--web-addr", "127.0.0.1:8080"}, "--web-addr does nothing with --once"},
		{[]string{"--timeout", "30s"}, "--timeout bounds a run with --once"},
		// Refused before any instance is provisioned, not once they rotate.
		{[]string{"--web-addr", "127.0.0.1"}, `--web-addr "127.0.0.1": address 127.0.0.1: missing port in address`},
		{[]string{"--web-addr", "127.0.0.1:99999"}, `--web-addr "127.0.0.1:99999": port "99999" is no port number`},
		// A run with --once ends once every old credential is revoked,
		// after the grace: a --timeout no longer could never see it.
		{[]string{"--once", "--timeout", "10s"}, "--timeout 10s is no longer than --grace 30s"},
		{[]string{"--once", "--timeout", "1m", "--grace", "2m"}, "--timeout 1m0s is no longer than --grace 2m0s"},
		{[]string{"--once", "--timeout", "5s", "--grace", "5s", "--restart-delay", "1s"}, "--timeout 5s is no longer than --grace 5s"},
	} {
		env, _, stderr := devEnv()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := runCommand(ctx, env, "dev", append([]string{"--instances", "1"}, tt.args...)...)
		cancel()
		var printed bytes.Buffer
		code := 0
		if err != nil {
			code = report(&printed, err)
		}
		if code != 2 || !strings.Contains(printed.String(), tt.want) {
			t.Errorf("rekey dev %s: exit %d, printed %q; want exit 2 and %q\nstderr:\n%s",
				strings.Join(tt.args, " "), code, printed.String(), tt.want, stderr)
		}
	}
}

// TestDevTakesTheEnvironmentsTuning: rekey dev runs at the environment's
// REKEY_HEROKU_RATE (its --once timeout follows that pace) and says, once,
// which settings of the environment it ignores and what to use instead.
func TestDevTakesTheEnvironmentsTuning(t *testing.T) {
	vars := map[string]string{"REKEY_HEROKU_RATE": "36", "REKEY_GRACE": "1h", "REKEY_LOG_LEVEL": "error"}
	stderr := &syncBuffer{}
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		names: []string{"REKEY_HEROKU_RATE", "REKEY_GRACE", "REKEY_LOG_LEVEL", "PATH"},
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: stderr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runCommand(ctx, env, "dev", "--once", "--instances", "100", "--grace", "3s", "--restart-delay", "1s")
	}()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(stderr.String(), "(--timeout)") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	out := stderr.String()
	// 200 Heroku calls at 36 an hour take hours; at the default pace,
	// minutes.
	if !regexp.MustCompile(`giving up after \d+h`).MatchString(out) {
		t.Errorf("the run's timeout does not follow REKEY_HEROKU_RATE=36:\n%s", out)
	}
	if want := "rekey dev: ignores REKEY_GRACE (use --grace)\n"; strings.Count(out, "rekey dev: ignores") != 1 || !strings.Contains(out, want) {
		t.Errorf("stderr does not say once %q:\n%s", want, out)
	}
}

// TestDevIgnoredNamesOnlySettings: rekey dev says which of rekey's settings
// it ignores, and with what to replace them; a name that is no setting at
// all (a typo) is not said to be one dev "sets its own": the
// unknown_setting warning names the setting it is near.
func TestDevIgnoredNamesOnlySettings(t *testing.T) {
	got := devIgnored([]string{"REKEY_GRAEC", "REKEY_GRACE", "REKEY_QUARANTINE_AFTER", "REKEY_DEV_X", "REKEY_TEST_REDIS_URL", "PATH"})
	want := []string{"REKEY_GRACE (use --grace)", "REKEY_QUARANTINE_AFTER (dev sets its own)"}
	if !slices.Equal(got, want) {
		t.Errorf("devIgnored = %q, want %q", got, want)
	}
}

// TestDevIgnoresTheValuesOfSettingsItIgnores: rekey dev sets its own
// Heroku, issuer, keys and grace, so a value of those in the environment
// that a worker would refuse (a docker-compose .env's
// HEROKU_API_URL=http://fakeheroku:5001, REKEY_ISSUER_URL=http://issuer:5002)
// does not stop it: it says it ignores them, and runs. So with the real
// app's PORT (dev serves on --web-addr), even one a worker would refuse,
// and the real add-on's secrets.
func TestDevIgnoresTheValuesOfSettingsItIgnores(t *testing.T) {
	vars := map[string]string{"HEROKU_API_URL": "http://fakeheroku:5001", "REKEY_ISSUER_URL": "http://issuer:5002",
		"REKEY_ENCRYPTION_KEYS": "not-a-key", "REKEY_GRACE": "3d", "REKEY_LOG_LEVEL": "error", "PORT": "80800",
		"HEROKU_OAUTH_CLIENT_SECRET": "real-secret", "HEROKU_ADDON_PASSWORD": "real-password"}
	names := []string{"PATH"}
	for k := range vars {
		names = append(names, k)
	}
	stderr := &syncBuffer{}
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, names: names,
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: stderr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runCommand(ctx, env, "dev", "--once", "--instances", "1", "--grace", "3s", "--restart-delay", "1s")
	}()
	var err error
	select {
	case err = <-done:
	case <-func() chan struct{} {
		c := make(chan struct{})
		go func() {
			for !strings.Contains(stderr.String(), "(--timeout)") && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			close(c)
		}()
		return c
	}():
		cancel()
		err = <-done
	}
	out := stderr.String()
	if !strings.Contains(out, "(--timeout)") {
		t.Fatalf("rekey dev did not start with settings it ignores set (%v):\n%s", err, out)
	}
	for _, name := range []string{"HEROKU_API_URL", "REKEY_ISSUER_URL", "REKEY_ENCRYPTION_KEYS", "REKEY_GRACE", "PORT",
		"HEROKU_OAUTH_CLIENT_SECRET", "HEROKU_ADDON_PASSWORD"} {
		if !strings.Contains(out, name+" (") {
			t.Errorf("stderr does not say rekey dev ignores %s:\n%s", name, out)
		}
	}
}

// TestDevPostgresURLNotAURLSaysSo: a REKEY_DEV_POSTGRES_URL that is no
// postgres:// URL (the host-only form "postgres@127.0.0.1:5433") is named
// as such, with the form to write, not taken for a PostgreSQL that did
// not answer and needs installing.
func TestDevPostgresURLNotAURLSaysSo(t *testing.T) {
	env, _, stderr := devEnv()
	env.lookup = func(name string) (string, bool) {
		if name == "REKEY_DEV_POSTGRES_URL" {
			return "postgres@127.0.0.1:5433", true
		}
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := runCommand(ctx, env, "dev", "--once", "--issuer", "postgres", "--instances", "1", "--grace", "7s", "--restart-delay", "1s")
	var printed bytes.Buffer
	code := 0
	if err != nil {
		code = report(&printed, err)
	}
	msg := printed.String()
	if code != 1 || !strings.Contains(msg, "REKEY_DEV_POSTGRES_URL is not a postgres:// URL") ||
		!strings.Contains(msg, "postgres://postgres@127.0.0.1:5432/postgres") || strings.Contains(msg, "install one") {
		t.Errorf("exit %d, printed %q; want exit 1 naming REKEY_DEV_POSTGRES_URL as no postgres:// URL, with the form to write\nstderr:\n%s",
			code, msg, stderr)
	}
}
