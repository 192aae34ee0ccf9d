package pgissuer_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

// moveFixture gives the fixture a second server entry, "other", for db's
// server, and a database there (db) with an owner role of its own: the
// instance's location after a move. It returns that location.
func moveFixture(t *testing.T, f *fixture, db *pgtest.DB) pgissuer.Location {
	t.Helper()
	owner := pgx.Identifier{db.Name + "_owner"}.Sanitize()
	mustExec(t, db.ServerURL, "CREATE ROLE "+owner+" NOLOGIN")
	t.Cleanup(func() { _ = pgtest.Exec(context.Background(), db.ServerURL, "DROP ROLE IF EXISTS "+owner) })
	mustExec(t, db.ServerURL, "ALTER DATABASE "+pgx.Identifier{db.Name}.Sanitize()+" OWNER TO "+owner)
	mustExec(t, db.URL, "ALTER SCHEMA public OWNER TO "+owner)
	f.useServers(t, `{"main":"`+f.db.ServerURL+`","other":"`+db.ServerURL+`"}`)
	moved := f.loc
	moved.Server, moved.Database, moved.Owner = "other", db.Name, db.Name+"_owner"
	return moved
}

// An instance moved to another server and database after a credential was
// minted: verify and usage find that credential's role where it lives, and
// revoking it revokes the role there, in the database it was minted for
// (REASSIGN OWNED there hands what it owns to the owner role it acted as),
// and drops it. "other" is another PostgreSQL server, where the role does
// not exist, or the same one under another id, where it does (roles are
// cluster-wide) but the database is another.
func TestRevokeFindsTheRoleWhereItWasMintedAfterAMove(t *testing.T) {
	t.Run("another server", func(t *testing.T) {
		f := newFixture(t)
		revokeAfterAMove(t, f, moveFixture(t, f, pgtest.Another(t)))
	})
	t.Run("same server under another id", func(t *testing.T) {
		f := newFixture(t)
		revokeAfterAMove(t, f, moveFixture(t, f, pgtest.New(t)))
	})
}

func revokeAfterAMove(t *testing.T, f *fixture, moved pgissuer.Location) {
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	oldConn := connect(t, old.Config["DATABASE_URL"].Reveal())
	if _, err := oldConn.Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int)"); err != nil {
		t.Fatalf("the old role creates a table of its own: %v", err)
	}
	f.locs.mu.Lock()
	f.locs.m["inst-1"] = moved
	f.locs.mu.Unlock()
	next, err := f.iss.Mint(ctx, "inst-1", "rot-2")
	if err != nil {
		t.Fatalf("mint at the new location: %v", err)
	}
	if err := f.iss.Verify(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("verify of the credential minted before the move: %v", err)
	}
	if u, err := f.iss.Usage(ctx, "inst-1", old.ID); err != nil || u.LastUsedAt.IsZero() {
		t.Fatalf("usage of the old credential, which has a session: %+v, %v", u, err)
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke after the move: %v", err)
	}
	if err := oldConn.Ping(ctx); err == nil {
		t.Fatal("the old role's session survived its revocation")
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
	var owner string
	if err := connect(t, f.db.URL).QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'mine'").Scan(&owner); err != nil || owner != f.loc.Owner {
		t.Fatalf("the old role's table belongs to %q (%v), want the owner role it acted as, %s", owner, err, f.loc.Owner)
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoking the revoked role again: %v", err)
	}
	if err := f.iss.Revoke(ctx, "inst-1", next.ID); err != nil {
		t.Fatalf("revoke at the new location: %v", err)
	}
}

// A role minted by an earlier rekey, whose comment holds only the instance
// and the rotation, is revoked as before: in the instance's database.
func TestRevokeTakesARoleWithAnEarlierComment(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	mustExec(t, f.db.ServerURL, "COMMENT ON ROLE "+pgx.Identifier{old.ID}.Sanitize()+" IS 'rekey instance=inst-1 rotation=rot-1'")
	if _, err := connect(t, old.Config["DATABASE_URL"].Reveal()).Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int)"); err != nil {
		t.Fatal(err)
	}
	if err := f.iss.Verify(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if again, err := f.iss.Mint(ctx, "inst-1", "rot-1"); err != nil || again.ID != old.ID {
		t.Fatalf("a rerun of the mint: %v", err)
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
}
