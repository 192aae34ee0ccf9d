package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A walk of the due revocations a page at a time sees every entry once,
// even when many share one revoke time, when entries leave behind the
// cursor meanwhile, and when the cursor's own entry leaves.
func TestDueRevocationsAfterWalksEveryEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t) // a fixed clock: every revoke time is the same
	const n = 23
	for i := range n {
		id := fmt.Sprintf("inst-%02d", i)
		f.register(t, id, "cred-0")
		mustClaim(t, f.st, id, "rot-"+id)
		if err := f.st.SavePending(ctx, id, "rot-"+id, "cred-1", map[string]secret.String{"A_URL": secret.New("v-" + id)}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Promote(ctx, id, "rot-"+id, "cred-1", time.Minute, ""); err != nil {
			t.Fatal(err)
		}
	}
	due := f.now.Add(time.Hour)
	seen := map[string]int{}
	var cur store.Cursor
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("the walk does not end")
		}
		revs, next, done, err := f.st.DueRevocationsAfter(ctx, due, cur, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range revs {
			seen[r.InstanceID]++
		}
		if pages == 1 {
			// The cursor's entry and one behind it are revoked meanwhile.
			for _, r := range revs[len(revs)-2:] {
				if err := f.st.MarkRevoked(ctx, r.InstanceID, r.CredentialID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if done {
			break
		}
		cur = next
	}
	if len(seen) != n {
		t.Errorf("the walk saw %d of %d entries: %v", len(seen), n, seen)
	}
	if revs, _, done, _ := f.st.DueRevocationsAfter(ctx, f.now, store.Cursor{}, 5); len(revs) != 0 || !done {
		t.Errorf("entries not yet due: got %d, done %v; want none, done", len(revs), done)
	}
}

// A revocation revoked by hand (an operator ran its archived task) leaves
// the dead-letter set.
func TestRevokedCredentialLeavesTheDeadLetterSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-r", "cred-0")
	mustClaim(t, f.st, "inst-r", "rot-r")
	if err := f.st.SavePending(ctx, "inst-r", "rot-r", "cred-1", map[string]secret.String{"A_URL": secret.New("v")}); err != nil {
		t.Fatal(err)
	}
	prev, err := f.st.Promote(ctx, "inst-r", "rot-r", "cred-1", time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.SetRevocationDead(ctx, *prev, store.DeadRefused); !ok || err != nil {
		t.Fatalf("SetRevocationDead = %v, %v", ok, err)
	}
	if ok, _ := f.st.SetRevocationDead(ctx, *prev, store.DeadRefused); ok {
		t.Error("SetRevocationDead twice moved the entry twice")
	}
	if err := f.st.MarkRevoked(ctx, "inst-r", "cred-0"); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.st.CountDeadRevocations(ctx); n != 0 {
		t.Errorf("%d dead after the credential was revoked, want 0", n)
	}
	if r, err := f.st.RetryDeadRevocation(ctx, "inst-r", "cred-0", "test"); r != nil || err != nil {
		t.Errorf("RetryDeadRevocation of a revoked credential = %v, %v; want nothing", r, err)
	}
}
