package pgissuer_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The owner role owns the instance's database and may limit its
// connections (ALTER DATABASE ... CONNECTION LIMIT), a limit a superuser
// passes and an admin role with CREATEROLE does not. An app that keeps
// every allowed connection open, on the current credential, leaves none
// for rekey: the revocation of a previous credential that owns nothing
// there needs none, and must not fail for as long as the app runs.
func TestRevokeOfACredentialOwningNothingNeedsNoConnectionToTheDatabase(t *testing.T) {
	f := newFixture(t)
	withCreateRoleAdmin(t, f)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	current, err := f.iss.Mint(ctx, "inst-1", "rot-2")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	app := connect(t, current.Config["DATABASE_URL"].Reveal())
	if _, err := app.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+" CONNECTION LIMIT 1"); err != nil {
		t.Fatalf("the tenant limits its database's connections: %v", err)
	}
	t.Cleanup(func() {
		mustExec(t, f.db.ServerURL, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+" CONNECTION LIMIT -1")
	})
	if logsIn(ctx, current.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("a second connection to the database opened past its limit")
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
	if _, err := app.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("the app's session on the current credential: %v", err)
	}
}
