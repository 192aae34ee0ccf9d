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
