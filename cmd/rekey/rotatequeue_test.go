package main

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateRefusesFleetOnInteractiveQueue: --all, or more than 10
// instances, on --queue interactive is a usage error (exit 2) pointing to
// --queue bulk, and changes nothing; 10 named instances may go there.
func TestRotateRefusesFleetOnInteractiveQueue(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 11)
	list := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(list, []byte(strings.Join(ids, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	before := c.snapshot(t)
	for _, args := range [][]string{
		{"--all", "--queue", "interactive", "--confirm"},
		{"--all", "--queue", "interactive", "--plan"},
		{"--from", list, "--queue", "interactive", "--confirm"},
		append([]string{"--queue", "interactive"}, ids...),
	} {
		err := c.run(t, "rotate", args...)
		if !isUsage(err) || !strings.Contains(err.Error(), "interactive is for customers' own rotations") ||
			!strings.Contains(err.Error(), "use --queue bulk") {
			t.Errorf("rekey rotate %s: err = %v, want a usage error pointing to --queue bulk", strings.Join(args, " "), err)
		}
	}
	if !maps.Equal(before, c.snapshot(t)) {
		t.Fatal("a refused request changed Redis")
	}
	if err := c.run(t, "rotate", append([]string{"--queue", "interactive", "--confirm"}, ids[:10]...)...); err != nil {
		t.Fatalf("10 ids on the interactive queue: %v", err)
	}
	if got := c.pending(t, "interactive"); got != 10 {
		t.Errorf("%d tasks on interactive, want 10", got)
	}
}
