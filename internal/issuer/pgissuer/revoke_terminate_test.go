package pgissuer_test

import (
	"context"
	"testing"
	"time"
)

// An admin role that does not inherit the privileges of the roles granted
// to it (NOINHERIT) may not signal the old credential's backends itself,
// but may act as the role it grants itself (SET ROLE) and end them as
// that role, and hand what it owns to the owner role as that role: the
// credential is locked out, its open session is ended, its table goes to
// the owner role and its role is dropped, as with an admin that inherits.
func TestNoInheritAdminEndsTheOldSessionsAndRevokes(t *testing.T) {
	f := newFixture(t)
	withAdmin(t, f, "CREATEROLE NOINHERIT")
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	session := connect(t, old.Config["DATABASE_URL"].Reveal())
	if _, err := session.Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int)"); err != nil {
		t.Fatalf("old role creates a table of its own: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.iss.Revoke(rctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke with a NOINHERIT admin: %v", err)
	}
	if logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("the old credential still logs in after its revocation")
	}
	if err := session.Ping(ctx); err == nil {
		t.Fatal("the old credential's open session survived its revocation")
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
	var owner string
	if err := connect(t, f.db.URL).QueryRow(ctx, "SELECT tableowner::text FROM pg_tables WHERE tablename = 'mine'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != f.loc.Owner {
		t.Fatalf("the old role's table belongs to %s, want the owner role %s", owner, f.loc.Owner)
	}
	// The admin's pooled connections act as the admin again: a later
	// mint and revocation on them work.
	next, err := f.iss.Mint(ctx, "inst-1", "rot-2")
	if err != nil {
		t.Fatalf("mint after the revocation: %v", err)
	}
	if err := f.iss.Revoke(rctx, "inst-1", next.ID); err != nil {
		t.Fatalf("revoke after the revocation: %v", err)
	}
}
