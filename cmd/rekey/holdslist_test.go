package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// TestHoldsListSaysThereAreMore: a list cut at --limit (1000 by default)
// says on stderr that there are more, in text and under --json, so that a
// script releasing what the list names knows it did not see them all; a
// whole list says its count. `instances show --json` gives "holds": [] for
// an instance with none, an array as for one with some.
func TestHoldsListSaysThereAreMore(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	ids := c.register(t, 4)
	if err := c.run(t, "instances", "show", ids[0], "--json"); err != nil {
		t.Fatal(err)
	}
	var shown struct{ Holds json.RawMessage }
	if err := json.Unmarshal(c.stdout.Bytes(), &shown); err != nil || string(shown.Holds) != "[]" {
		t.Errorf(`instances show --json of an instance with no hold: "holds" is %s (%v), want []`, shown.Holds, err)
	}
	for _, id := range ids {
		if _, err := c.st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: "rot-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	c.complete(t, ids, nil)
	now := time.Now()
	for _, id := range ids {
		prev, err := c.st.Previous(ctx, id)
		if err != nil || len(prev) != 1 {
			t.Fatalf("%s: previous %v, %v", id, prev, err)
		}
		if err := c.st.SaveHold(ctx, store.Hold{InstanceID: id, CredentialID: prev[0].CredentialID,
			RevokeAt: now, HeldAt: now, CapAt: now.Add(time.Hour), LastUsedAt: now, LastUsedBy: "web.1",
			CheckedAt: now, NextCheckAt: now.Add(time.Minute)}, store.EventRevocationHeld, "in use"); err != nil {
			t.Fatal(err)
		}
	}
	const more = "the oldest 3 held revocations listed, there are more: --limit 6 lists more\n"
	if err := c.run(t, "holds", "list", "--limit", "3"); err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(c.stdout.String(), "\n") - 1; rows != 3 || c.stderr.String() != more {
		t.Errorf("holds list --limit 3 of 4: %d rows, stderr %q; want 3 rows and %q", rows, c.stderr.String(), more)
	}
	if err := c.run(t, "holds", "list", "--limit", "3", "--json"); err != nil {
		t.Fatal(err)
	}
	var listed []json.RawMessage
	if err := json.Unmarshal(c.stdout.Bytes(), &listed); err != nil || len(listed) != 3 || c.stderr.String() != more {
		t.Errorf("holds list --limit 3 --json of 4: %d listed (%v), stderr %q; want 3 and %q", len(listed), err, c.stderr.String(), more)
	}
	if err := c.run(t, "holds", "list"); err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(c.stdout.String(), "\n") - 1; rows != 4 || c.stderr.String() != "4 held revocations\n" {
		t.Errorf("holds list of 4: %d rows, stderr %q; want 4 rows and the count", rows, c.stderr.String())
	}
	if err := c.run(t, "holds", "list", "--limit", "0"); err == nil || !strings.Contains(err.Error(), "--limit must be between 1 and") {
		t.Errorf("holds list --limit 0: %v, want a usage error", err)
	}
}
