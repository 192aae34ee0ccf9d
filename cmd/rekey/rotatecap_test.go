package main

import (
	"strings"
	"testing"
)

// capped registers n instances and rotates the first one REKEY_MAX_PREVIOUS
// (3) times, so that it has as many superseded credentials waiting as the
// store allows and its next claim is refused.
func (c *cli) capped(t *testing.T, n int) []string {
	t.Helper()
	ids := c.register(t, n)
	for range 3 {
		if err := c.run(t, "rotate", ids[0]); err != nil {
			t.Fatal(err)
		}
		c.complete(t, ids[:1], nil)
	}
	return ids
}

// TestRotateAllSaysWhichInstancesTheCapRefused: `rekey rotate --all` leaves
// out an instance that already has REKEY_MAX_PREVIOUS credentials waiting;
// its line must say so, or an operator rotating the fleet after a leak reads
// every instance as rotated while that one keeps its current credential.
func TestRotateAllSaysWhichInstancesTheCapRefused(t *testing.T) {
	c := newCLI(t)
	ids := c.capped(t, 3)
	if err := c.run(t, "rotate", "--all", "--confirm"); err != nil {
		t.Fatal(err)
	}
	if out := c.stdout.String(); !strings.Contains(out, "2 enqueued on bulk") || !strings.Contains(out, "1 refused") {
		t.Errorf("stdout %q does not count the instance the cap refused", out)
	}
	if !strings.Contains(c.stderr.String(), ids[0]) || !strings.Contains(c.stderr.String(), "REKEY_MAX_PREVIOUS") {
		t.Errorf("stderr %q does not name the refused instance and the cap", c.stderr)
	}
}
