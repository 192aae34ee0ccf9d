package main

import (
	"maps"
	"strings"
	"testing"
)

// TestRotateRefusesAGraceBelowTheFloor: `rekey rotate --grace 1ms` is
// refused, naming the floor, and changes nothing.
func TestRotateRefusesAGraceBelowTheFloor(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 2)
	before := c.snapshot(t)
	err := c.run(t, "rotate", "--grace", "1ms", ids[0], ids[1])
	if err == nil || !strings.Contains(err.Error(), "floor of 10m0s (REKEY_MIN_GRACE") {
		t.Fatalf("rotate --grace 1ms: %v, want a refusal naming the floor", err)
	}
	if after := c.snapshot(t); !maps.Equal(before, after) {
		t.Error("a refused rotation changed Redis")
	}
	if err := c.run(t, "rotate", "--grace", "10m", ids[0]); err != nil {
		t.Fatalf("rotate --grace 10m: %v", err)
	}
}
