package main

import (
	"strings"
	"testing"
)

// --interval says how often --wait looks at the batch: given without
// --wait, the command would print once and exit, the interval ignored, so
// it is refused (exit 2) before anything is read or enqueued, as rekey dev
// refuses a --timeout without --once.
func TestIntervalNeedsWait(t *testing.T) {
	c := newCLI(t)
	c.register(t, 1)
	for _, args := range [][]string{
		{"batches", "show", "bat_1", "--interval", "5s"},
		{"rotate", "inst-00000", "--interval", "5s"},
		{"rotate", "inst-00000", "--interval", "5s", "--plan"},
	} {
		err := c.run(t, args[0], args[1:]...)
		if !isUsage(err) || !strings.Contains(err.Error(), "--interval") || !strings.Contains(err.Error(), "--wait") {
			t.Errorf("rekey %s: %v, want a usage error naming --interval and --wait", strings.Join(args, " "), err)
		}
	}
	if n := c.pending(t, "interactive"); n != 0 {
		t.Errorf("%d rotations enqueued by refused commands", n)
	}
}
