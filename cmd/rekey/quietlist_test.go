package main

import (
	"strings"
	"testing"
)

// rekey instances list -q prints the ids alone, one a line, as docker ps
// -q does, and rekey rotate --from - takes them as they are; the table
// fed in instead is refused at once (exit 2) by its header line, naming
// the ids-only flag, rather than line by line, and nothing is enqueued.
func TestInstancesListQuietPipesIntoRotate(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)

	if err := c.run(t, "instances", "list"); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	table := c.stdout.String()
	var listed []string // in the table's order, registration order
	for _, row := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		listed = append(listed, strings.Fields(row)[0])
	}
	for _, args := range [][]string{{"--from", "-", "--confirm"}, {"--from", "-", "--confirm", "--skip-invalid"}} {
		c.stdin = strings.NewReader(table)
		err := c.run(t, "rotate", args...)
		if !isUsage(err) || !strings.Contains(err.Error(), "rekey instances list -q") {
			t.Errorf("rotate %v fed the table: %v, want a usage error naming 'rekey instances list -q'\n%s", args, err, c.stderr)
		}
		if strings.Contains(c.stderr.String(), "line 2") {
			t.Errorf("rotate %v fed the table refused it line by line:\n%s", args, c.stderr)
		}
		if keys := c.batchKeys(t); len(keys) > 0 {
			t.Fatalf("a batch was created: %v", keys)
		}
	}

	for _, flag := range []string{"-q", "--quiet", "-quiet"} {
		if err := c.run(t, "instances", "list", flag); err != nil {
			t.Fatalf("instances list %s: %v\n%s", flag, err, c.stderr)
		}
		if got, want := c.stdout.String(), strings.Join(listed, "\n")+"\n"; len(listed) != len(ids) || got != want {
			t.Errorf("instances list %s printed %q, want %q", flag, got, want)
		}
	}
	if err := c.run(t, "instances", "list", "-q", "--json"); !isUsage(err) {
		t.Errorf("instances list -q --json: %v, want a usage error", err)
	}

	if err := c.run(t, "instances", "list", "-q"); err != nil {
		t.Fatal(err)
	}
	c.stdin = strings.NewReader(c.stdout.String())
	if err := c.run(t, "rotate", "--from", "-", "--confirm"); err != nil {
		t.Fatalf("rotate --from - fed instances list -q: %v\n%s", err, c.stderr)
	}
	if got := c.pending(t, "default"); got != len(ids) {
		t.Errorf("%d rotations enqueued, want %d", got, len(ids))
	}
}
