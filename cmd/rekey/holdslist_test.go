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

// TestHoldsListReadsPastAHoldThatIsGone: an index entry whose hold is gone
// (released between the index read and the hold's, or deleted outside
// rekey) is passed over, and the list still fills --limit from the holds
// after it and still says when there are more: a script releasing what
// the list names must not take a list cut short for the whole of it.
func TestHoldsListReadsPastAHoldThatIsGone(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	ids := c.register(t, 6)
	for _, id := range ids {
		if _, err := c.st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: "rot-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	c.complete(t, ids, nil)
	now := time.Now()
	creds := make([]string, len(ids))
	for i, id := range ids {
		prev, err := c.st.Previous(ctx, id)
		if err != nil || len(prev) != 1 {
			t.Fatalf("%s: previous %v, %v", id, prev, err)
		}
		creds[i] = prev[0].CredentialID
		held := now.Add(time.Duration(i) * time.Second) // ids[0] is the oldest
		if err := c.st.SaveHold(ctx, store.Hold{InstanceID: id, CredentialID: creds[i],
			RevokeAt: held, HeldAt: held, CapAt: held.Add(time.Hour), LastUsedAt: held, LastUsedBy: "web.1",
			CheckedAt: held, NextCheckAt: held.Add(time.Minute)}, store.EventRevocationHeld, "in use"); err != nil {
			t.Fatal(err)
		}
	}
	// The two oldest holds are gone; their entries stay in rekey:holds.
	for _, i := range []int{0, 1} {
		if err := c.r.Client.Del(ctx, "rekey:hold:"+ids[i]+":"+creds[i]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	const more = "the oldest 3 held revocations listed, there are more: --limit 6 lists more\n"
	for _, args := range [][]string{{"list", "--limit", "3"}, {"list", "--limit", "3", "--json"}} {
		if err := c.run(t, "holds", args...); err != nil {
			t.Fatal(err)
		}
		var listed []string
		if args[len(args)-1] == "--json" {
			var holds []store.Hold
			if err := json.Unmarshal(c.stdout.Bytes(), &holds); err != nil {
				t.Fatal(err)
			}
			for _, h := range holds {
				listed = append(listed, h.InstanceID+"/"+h.CredentialID)
			}
		} else {
			for _, row := range strings.Split(strings.TrimSpace(c.stdout.String()), "\n")[1:] {
				listed = append(listed, strings.Fields(row)[0])
			}
		}
		want := []string{ids[2] + "/" + creds[2], ids[3] + "/" + creds[3], ids[4] + "/" + creds[4]}
		if strings.Join(listed, " ") != strings.Join(want, " ") {
			t.Errorf("holds %s: listed %q, want the oldest 3 live holds %q", strings.Join(args, " "), listed, want)
		}
		if c.stderr.String() != more {
			t.Errorf("holds %s with 4 live holds past 2 gone: stderr %q, want %q", strings.Join(args, " "), c.stderr.String(), more)
		}
	}
}
