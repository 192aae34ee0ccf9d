package pgissuer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Any role may set exit_on_error, and the owner role may make it its
// database's default: every error of a session that does not say
// otherwise then ends the session. An admin role that does not inherit
// the privileges of the roles granted to it (NOINHERIT) is refused REASSIGN
// OWNED at first and runs it again as the old role, on the same
// connection: with the session ended by that refusal, each revocation of a
// credential that owned something there failed, retried until it went
// dead, the role left in place, while the tenant's apps, making no such
// error or sending the setting off at connection, worked on.
func TestATenantsExitOnErrorDefaultDoesNotBlockRevoke(t *testing.T) {
	f := newFixture(t)
	withAdmin(t, f, "CREATEROLE NOINHERIT")
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	tenant := connect(t, old.Config["DATABASE_URL"].Reveal())
	// Something the credential owns itself, so that the revocation has
	// to reach the database to hand it over.
	if _, err := tenant.Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int); RESET ROLE"); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+" SET exit_on_error = on"); err != nil {
		t.Fatalf("the tenant sets exit_on_error: %v", err)
	}
	t.Cleanup(func() {
		mustExec(t, f.db.ServerURL, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+" RESET exit_on_error")
	})
	app := connect(t, f.db.URL)
	if _, err := app.Exec(ctx, "SELECT 1/0"); err == nil || app.Ping(ctx) == nil {
		t.Fatal("an error did not end a session of the tenant's database that does not override exit_on_error")
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.iss.Revoke(rctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
	var owner string
	if err := connect(t, f.db.URL).QueryRow(ctx,
		"SELECT tableowner::text FROM pg_tables WHERE tablename = 'mine'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != f.loc.Owner {
		t.Fatalf("the credential's table belongs to %s, want the owner role %s", owner, f.loc.Owner)
	}
}
