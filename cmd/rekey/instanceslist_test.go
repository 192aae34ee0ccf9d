package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
)

// rekey instances list pages through the live instances as batches list
// does: rows on stdout, the count and how to list the next page on
// stderr, --json an array; a deprovisioned instance is not listed, and
// --after naming one is refused rather than started over; --after "" is
// the first page.
func TestInstancesListPagesTheLiveInstances(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 5)
	if err := c.st.Deprovision(context.Background(), ids[4]); err != nil {
		t.Fatal(err)
	}
	var listed []string
	after := []string{"--after", ""} // a paging loop starts with no id: the first page
	for page := 0; page < 3; page++ {
		if err := c.run(t, "instances", append([]string{"list", "--limit", "2"}, after...)...); err != nil {
			t.Fatalf("%v\n%s", err, c.stderr)
		}
		rows := strings.Split(strings.TrimSpace(c.stdout.String()), "\n")
		if !strings.HasPrefix(rows[0], "INSTANCE") || len(rows) > 3 {
			t.Fatalf("page %d:\n%s", page, c.stdout)
		}
		for _, r := range rows[1:] {
			if !strings.Contains(r, "scheduled") {
				t.Errorf("row %q does not say the instance is scheduled", r)
			}
			listed = append(listed, strings.Fields(r)[0])
		}
		last := listed[len(listed)-1]
		if more := "of 4 instances listed, there are more: --after " + last; page < 1 != strings.Contains(c.stderr.String(), more) {
			t.Errorf("page %d: stderr %q (more to come: %v)", page, c.stderr, page < 1)
		}
		if page == 1 {
			break
		}
		after = []string{"--after", last}
	}
	slices.Sort(listed)
	if want := slices.Clone(ids[:4]); !slices.Equal(listed, want) {
		t.Errorf("listed %v, want the live %v", listed, want)
	}

	if err := c.run(t, "instances", "list", "--json"); err != nil {
		t.Fatal(err)
	}
	var all []store.Instance
	if err := json.Unmarshal(c.stdout.Bytes(), &all); err != nil || len(all) != 4 || all[0].NextRotationAt.IsZero() {
		t.Errorf("--json: %d instances (%v), first %+v", len(all), err, all)
	}
	if err := c.run(t, "instances", "list", "--after", ids[4]); err == nil || isUsage(err) ||
		!strings.Contains(err.Error(), "no live instance has that id") {
		t.Errorf("--after a deprovisioned instance: %v, want a refusal (exit 1)", err)
	}
	for _, args := range [][]string{{"--limit", "0"}, {"--after", "bad id!"}} {
		if err := c.run(t, "instances", append([]string{"list"}, args...)...); !isUsage(err) {
			t.Errorf("instances list %v: %v, want a usage error", args, err)
		}
	}
}
