package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// deadRevocation registers id, rotates it through the store and sets its
// superseded credential aside as dead.
func (c *cli) deadRevocation(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	c.pendingRotation(t, id)
	prev, err := c.st.Promote(ctx, id, "rot-"+id, "cred-1", time.Millisecond, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.st.SetRevocationDead(ctx, *prev, store.DeadRefused); !ok || err != nil {
		t.Fatalf("SetRevocationDead = %v, %v", ok, err)
	}
}

func TestRevocationsDeadAndRetry(t *testing.T) {
	c := newCLI(t)
	c.deadRevocation(t, "inst-a")
	c.deadRevocation(t, "inst-b")

	if err := c.run(t, "revocations", "dead"); err != nil {
		t.Fatalf("dead: %v\n%s", err, c.stderr)
	}
	for _, want := range []string{"inst-a/cred-0", "inst-b/cred-0", "previous", "refused"} {
		if !strings.Contains(c.stdout.String(), want) {
			t.Errorf("dead output lacks %q:\n%s", want, c.stdout)
		}
	}
	// stdout holds the header and the rows, piped on to retry; the count
	// and what to do go to stderr.
	if n := strings.Count(c.stdout.String(), "\n"); n != 3 || !strings.Contains(c.stderr.String(), "2 dead revocations: retry them") {
		t.Errorf("want 3 lines on stdout (%d) and the count on stderr:\n%s\nstderr: %s", n, c.stdout, c.stderr)
	}
	if err := c.run(t, "revocations", "dead", "--json"); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(c.stdout.String()), &rows); err != nil || len(rows) != 2 || rows[0]["id"] != "inst-a/cred-0" {
		t.Fatalf("dead --json = %s (%v); want two rows, inst-a/cred-0 first", c.stdout, err)
	}

	err := c.run(t, "revocations", "retry", "inst-a/cred-0", "inst-a/cred-9")
	if err == nil || !strings.Contains(err.Error(), "inst-a/cred-9") {
		t.Fatalf("retry with an id that is not dead = %v; want an error naming it", err)
	}
	if n, _ := c.st.CountDeadRevocations(context.Background()); n != 2 {
		t.Fatalf("a refused retry moved entries: %d dead left, want 2", n)
	}
	if err := c.run(t, "revocations", "retry", "inst-a/cred-0"); err != nil {
		t.Fatalf("retry: %v\n%s", err, c.stderr)
	}
	if !strings.Contains(c.stdout.String(), "1 dead revocation moved back to due and its revoke task enqueued") {
		t.Errorf("retry output: %s", c.stdout)
	}
	if err := c.run(t, "revocations", "retry", "--all"); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.st.CountDeadRevocations(context.Background()); n != 0 {
		t.Errorf("%d dead after retry --all, want 0", n)
	}
	if n, _ := c.st.PendingRevocations(context.Background()); n != 2 {
		t.Errorf("%d revocations due after the retries, want 2", n)
	}
}

func TestRevocationsUsage(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{}, {"list"}, {"dead", "x"}, {"retry"}, {"retry", "--all", "a/b"}, {"dead", "--all"}} {
		if err := c.run(t, "revocations", args...); !isUsage(err) {
			t.Errorf("revocations %v = %v, want a usage error", args, err)
		}
	}
	if err := c.run(t, "revocations", "retry", "no-slash"); err == nil || !strings.Contains(err.Error(), "INSTANCE_ID/CREDENTIAL_ID") {
		t.Errorf("retry no-slash = %v; want the id format named", err)
	}
}

// A list's rows are piped on as kubectl's are: `rekey revocations dead |
// awk 'NR>1 {print $1}' | xargs rekey revocations retry` retries every dead
// revocation, since stdout holds the header and the rows only; the count
// and the hints go to stderr.
func TestDeadListPipesIntoRetry(t *testing.T) {
	c := newCLI(t)
	c.deadRevocation(t, "inst-a")
	c.deadRevocation(t, "inst-b")
	if err := c.run(t, "revocations", "dead"); err != nil {
		t.Fatalf("dead: %v\n%s", err, c.stderr)
	}
	ids := firstColumn(c.stdout.String())
	if err := c.run(t, "revocations", append([]string{"retry"}, ids...)...); err != nil {
		t.Fatalf("retry %v, the ids the list printed: %v", ids, err)
	}
	if n, _ := c.st.CountDeadRevocations(context.Background()); n != 0 {
		t.Errorf("%d dead revocations left after retrying the listed ones %v", n, ids)
	}
	if err := c.run(t, "revocations", "dead"); err != nil || c.stdout.String() != "" || !strings.Contains(c.stderr.String(), "no dead revocations") {
		t.Errorf("an empty list: %v; stdout %q, stderr %q; want nothing on stdout", err, c.stdout, c.stderr)
	}
}

// firstColumn is `awk 'NR>1 {print $1}'`: the first field of every line
// but the header.
func firstColumn(out string) []string {
	var ids []string
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 0 {
			ids = append(ids, f[0])
		}
	}
	return ids
}
