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
	for _, want := range []string{"inst-a/cred-0", "inst-b/cred-0", "previous", "refused", "2 dead revocations"} {
		if !strings.Contains(c.stdout.String(), want) {
			t.Errorf("dead output lacks %q:\n%s", want, c.stdout)
		}
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
	if !strings.Contains(c.stdout.String(), "1 dead revocations moved back") {
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
