package main

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateAllAsksOnATerminal: on a terminal, rotate --all shows the
// plan's summary and goes ahead on y only; a --from list of up to 5 ids
// and --confirm do not ask.
func TestRotateAllAsksOnATerminal(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 7)
	c.terminal = true
	before := c.snapshot(t)
	for _, answer := range []string{"\n", "n\n", "yes please\n", ""} {
		c.stdin = strings.NewReader(answer)
		if err := c.run(t, "rotate", "--all"); !errors.Is(err, errDeclined) {
			t.Fatalf("answer %q: err = %v, want errDeclined", answer, err)
		}
	}
	if !maps.Equal(before, c.snapshot(t)) {
		t.Fatal("a declined rotation changed Redis")
	}
	// Each update, and the first read of each instance registered without current_config.
	want := "rotate 7 of 7 instances on queue bulk (0 skipped): 14 Heroku API calls, at least 7 apps released and restarted"
	if !strings.Contains(c.stderr.String(), want) || !strings.Contains(c.stderr.String(), "[y/N]") {
		t.Errorf("the question lacks the plan's summary %q:\n%s", want, c.stderr)
	}

	c.stdin = strings.NewReader("y\n")
	if err := c.run(t, "rotate", "--all", "--reason", "asked"); err != nil {
		t.Fatal(err)
	}
	if got := c.pending(t, "bulk"); got != 7 {
		t.Fatalf("%d tasks on bulk after y, want 7", got)
	}

	c.complete(t, ids, nil)
	list := filepath.Join(t.TempDir(), "five.txt")
	if err := os.WriteFile(list, []byte(strings.Join(ids[:5], "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	c.stdin = strings.NewReader("")
	if err := c.run(t, "rotate", "--from", list); err != nil || strings.Contains(c.stderr.String(), "[y/N]") {
		t.Fatalf("--from with 5 ids asked or failed: %v\n%s", err, c.stderr)
	}
	c.complete(t, ids[:5], nil)
	if err := c.run(t, "rotate", "--all", "--confirm"); err != nil || strings.Contains(c.stderr.String(), "[y/N]") {
		t.Fatalf("--confirm asked or failed: %v\n%s", err, c.stderr)
	}
}

// TestRotateManyNamedIDsNeedsConfirm: 7 ids named on the command line
// (`rekey rotate $(cat ids.txt)`) need --confirm off a terminal, as the
// same ids with --from do, and with it go on the bulk queue, which the
// pace feeder meters and the circuit breaker pauses.
func TestRotateManyNamedIDsNeedsConfirm(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 7)
	before := c.snapshot(t)
	err := c.run(t, "rotate", ids...)
	if err == nil || !isUsage(err) {
		t.Errorf("rotate with %d named ids off a terminal, no --confirm: err = %v, want a usage error asking for --confirm", len(ids), err)
	}
	if !maps.Equal(before, c.snapshot(t)) {
		t.Fatalf("rotate with %d named ids off a terminal, no --confirm, enqueued: default=%d bulk=%d",
			len(ids), c.pending(t, "default"), c.pending(t, "bulk"))
	}
	if err := c.run(t, "rotate", append([]string{"--confirm"}, ids...)...); err != nil {
		t.Fatal(err)
	}
	if got := c.pending(t, "bulk"); got != len(ids) {
		t.Errorf("%d tasks on bulk after --confirm, want %d (default has %d)", got, len(ids), c.pending(t, "default"))
	}
}
