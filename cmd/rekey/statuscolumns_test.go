package main

import (
	"regexp"
	"strings"
	"testing"
)

// rekey scheduler status prints a label and its value a line, the values
// in one column, the held revocations' line among them: it was printed
// with a single space after its colon, its value out of the column.
func TestSchedulerStatusValuesShareOneColumn(t *testing.T) {
	c := newCLI(t)
	c.register(t, 2)
	if err := c.run(t, "scheduler", "status"); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	line := regexp.MustCompile(`^([a-z][a-z -]*:) +`)
	columns := map[int][]string{}
	for _, l := range strings.Split(strings.TrimSpace(c.stdout.String()), "\n") {
		if m := line.FindString(l); m != "" {
			columns[len(m)] = append(columns[len(m)], l)
		}
	}
	if len(columns) != 1 {
		t.Errorf("scheduler status's values start at %d columns, want one:\n%s", len(columns), c.stdout)
	}
	if !strings.Contains(c.stdout.String(), "held revocations") {
		t.Errorf("scheduler status names no held revocations:\n%s", c.stdout)
	}
}
