package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// TestCtrlCOnAWaitThatJoinedAWaveSaysWhatStillRuns: an operator runs
// `rotate --all --wait` again while the first wave is in flight, so the new
// batch joins every rotation and starts none, and presses Ctrl-C. The line
// must say that those rotations still run: "0 of 0 rotations finished so
// far" alone read as nothing left to follow.
func TestCtrlCOnAWaitThatJoinedAWaveSaysWhatStillRuns(t *testing.T) {
	c := newCLI(t)
	c.register(t, 8)
	if err := c.run(t, "rotate", "--all", "--confirm"); err != nil {
		t.Fatalf("first wave: %v\n%s", err, c.stderr)
	}
	cmd, stdout, stderr := startRekey(t, c.vars(), func(_, stderr string) bool {
		return strings.Contains(stderr, "8 in flight")
	}, "rotate", "--all", "--confirm", "--wait", "--interval", "100ms")
	if code := signalAndWait(t, cmd, syscall.SIGINT); code != 130 {
		t.Fatalf("exit %d, want 130\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout.String(), "0 enqueued on bulk, 8 joined a rotation in flight") {
		t.Fatalf("stdout: %s", stdout)
	}
	lines := rekeyLines(stderr.String())
	if len(lines) != 1 {
		t.Fatalf("want one line saying what was interrupted, got %q\nstderr:\n%s", lines, stderr)
	}
	for _, want := range []string{"keeps running without this command", "8 still in flight",
		"follow it with 'rekey batches show bat_"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("interruption line lacks %q: %s", want, lines[0])
		}
	}
}

// TestProgressBarOfABatchThatJoinedAWave: the bar of a batch that joined
// every rotation of a wave in flight, and started none, read "100% 0/0"
// while it waited on them.
func TestProgressBarOfABatchThatJoinedAWave(t *testing.T) {
	var m meter
	var out strings.Builder
	m.add(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), 0)
	m.draw(&out, store.Batch{ID: "bat_1", Total: 8, Joined: 8, InFlight: 8})
	want := "[..............................]   0% 0/0, 0 failed, 8 still in flight, the rotations in flight it joined included"
	if !strings.Contains(out.String(), want) {
		t.Errorf("bar = %q, want %q", out.String(), want)
	}
}

// TestAWaitThatOnlyJoinedAWaveSaysTheOldCredentialsStayValid: a batch that
// joined every rotation of a wave in flight, and started none, said nothing
// when its --wait ended of the old credentials those rotations replaced,
// which stay valid until their grace ends, as a batch of its own says of
// its rotations': an operator rotating after a leak read "done" as "the
// leaked credentials are dead".
func TestAWaitThatOnlyJoinedAWaveSaysTheOldCredentialsStayValid(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	if err := c.run(t, "rotate", "--all", "--confirm"); err != nil {
		t.Fatalf("first wave: %v\n%s", err, c.stderr)
	}
	c.stdout.Reset()
	c.stderr.Reset()
	errc := make(chan error, 1)
	env := c.env()
	go func() {
		errc <- runCommand(context.Background(), env, "rotate", "--all", "--confirm", "--wait", "--interval", "100ms")
	}()
	c.waitFor(t, "the joining request", func() bool { return strings.Contains(c.stdout.String(), "3 joined a rotation in flight") })
	c.complete(t, ids, nil)
	c.waitEnded(t, errc)
	const note = "the old credentials the 3 rotations this batch joined replaced stay valid until each one's grace ends"
	if !strings.Contains(c.stderr.String(), note) {
		t.Errorf("stderr lacks %q:\n%s", note, c.stderr)
	}
}
