package main

import (
	"context"
	"strings"
	"testing"
)

// rekey scheduler set ID --opt-in --window "$WINDOW", with WINDOW left
// unset, is refused (exit 2) naming the empty --window, and changes
// nothing: it opted the instance in and left its window as it was, as if
// no window had been asked for.
func TestSchedulerSetRefusesAnEmptyWindow(t *testing.T) {
	c := newCLI(t)
	id := c.register(t, 1)[0]
	if err := c.run(t, "scheduler", "set", id, "--opt-out", "--window", "22-04"); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	before := c.snapshot(t)
	for _, args := range [][]string{{"--opt-in", "--window", ""}, {"--window="}, {"--window", ""}} {
		err := c.run(t, "scheduler", append([]string{"set", id}, args...)...)
		if !isUsage(err) || !strings.Contains(err.Error(), "--window is empty") {
			t.Errorf("scheduler set %s %q: %v, want a usage error saying --window is empty", id, args, err)
		}
		in, err := c.st.Instance(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !in.ScheduleOptOut || in.Window == nil {
			t.Fatalf("scheduler set %s %q changed the schedule: opted out %v, window %v", id, args, in.ScheduleOptOut, in.Window)
		}
	}
	after := c.snapshot(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("key %s changed", k)
		}
	}
}

// TestWindowOfOneHourTwiceSaysSo: `--window 4-4` is refused (exit 2)
// saying its start and end are the same hour, and `--window 00-24`
// saying a whole day is no window, where both got the bare "use HH-HH"
// that 4-4 and 00-24 already follow.
func TestWindowOfOneHourTwiceSaysSo(t *testing.T) {
	c := newCLI(t)
	id := c.register(t, 1)[0]
	for window, want := range map[string]string{
		"4-4":   "start and end are the same hour",
		"22-22": "start and end are the same hour",
		"00-24": "a whole day is no window",
		"25-02": "use HH-HH in UTC",
	} {
		err := c.run(t, "scheduler", "set", id, "--window", window)
		if !isUsage(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("scheduler set --window %s: %v, want a usage error saying %q", window, err, want)
		}
	}
}

// TestEmptyCommandNameSuggestsNone: `rekey "$CMD"` with CMD unset is an
// unknown command suggesting none, where every command begins with "" and
// each was suggested.
func TestEmptyCommandNameSuggestsNone(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{""}, {" "}, {"scheduler", ""}} {
		err := run(context.Background(), c.env(), args)
		if !isUsage(err) || strings.Contains(err.Error(), "did you mean") || !strings.Contains(err.Error(), "empty") {
			t.Errorf("rekey %q: %v, want a usage error saying the command name is empty, suggesting none", args, err)
		}
	}
	if err := run(context.Background(), c.env(), []string{"rotat"}); err == nil || !strings.Contains(err.Error(), "did you mean rotate?") {
		t.Errorf("rekey rotat: %v, want a suggestion", err)
	}
}
