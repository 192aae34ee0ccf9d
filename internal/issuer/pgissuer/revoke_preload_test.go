package pgissuer_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Any role may name libraries every new session of a database loads
// (local_preload_libraries, from $libdir/plugins), and the owner role may
// make that the database's default. One that does not exist fails every
// connection that does not say otherwise as it opens, rekey's to revoke
// included, while the tenant's own apps, sending the setting empty at
// connection, work on: a revocation must not fail for as long as the
// tenant likes.
func TestATenantsPreloadLibraryDefaultDoesNotBlockRevoke(t *testing.T) {
	f := newFixture(t)
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
	if _, err := tenant.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+
		" SET local_preload_libraries = 'no_such_library'"); err != nil {
		t.Fatalf("the tenant sets local_preload_libraries: %v", err)
	}
	if logsIn(ctx, f.db.URL) {
		t.Fatal("a connection to the tenant's database that does not override local_preload_libraries opened")
	}
	if !logsIn(ctx, f.db.URL+"&local_preload_libraries=") {
		t.Fatal("the tenant's apps cannot connect even with local_preload_libraries sent empty")
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
	var owner string
	if err := connect(t, f.db.URL+"&local_preload_libraries=").QueryRow(ctx,
		"SELECT tableowner::text FROM pg_tables WHERE tablename = 'mine'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != f.loc.Owner {
		t.Fatalf("the credential's table belongs to %s, want the owner role %s", owner, f.loc.Owner)
	}
}
