package pgissuer_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

// The old credential connected to another database of the server (every
// role may, by default) and left default privileges and a grant there:
// DROP ROLE refuses while they exist, and REASSIGN OWNED and DROP OWNED in
// the instance's database alone do not reach them. The revocation clears
// them in that database too, and the role goes.
func TestRevokeClearsWhatTheCredentialLeftInAnotherDatabase(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := pgtest.New(t)
	mustExec(t, elsewhere.URL, "CREATE TABLE shared (x int)")
	mustExec(t, elsewhere.URL, "GRANT SELECT ON shared TO "+pgx.Identifier{old.ID}.Sanitize())
	u, _ := url.Parse(old.Config["DATABASE_URL"].Reveal())
	u.Path = "/" + elsewhere.Name
	tenant := connect(t, u.String())
	if _, err := tenant.Exec(ctx, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC"); err != nil {
		t.Fatalf("the credential sets default privileges in %s: %v", elsewhere.Name, err)
	}
	tenant.Close(ctx)

	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
}

// The old credential owns a table the customer's app is reading in a long
// transaction. Handing the table to the owner role needs its exclusive
// lock, and every new query of the app on that table would queue behind a
// statement waiting for it: the revocation waits a bounded time, fails
// transiently (objects_busy) with the credential already locked out, and
// goes through once the transaction ends.
func TestRevokeDoesNotQueueTheAppBehindABusyTable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	tenant := connect(t, old.Config["DATABASE_URL"].Reveal())
	if _, err := tenant.Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int)"); err != nil {
		t.Fatal(err)
	}
	tenant.Close(ctx)
	app := connect(t, f.db.URL)
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM mine"); err != nil {
		t.Fatal(err)
	}

	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = f.iss.Revoke(rctx, "inst-1", old.ID)
	var ie *issuer.Error
	if !issuer.IsTransient(err) || !errors.As(err, &ie) || ie.Code != pgissuer.CodeObjectsBusy {
		t.Fatalf("revoke while the app reads the table = %v, want a transient %s", err, pgissuer.CodeObjectsBusy)
	}
	if logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("the old credential logs in while its revocation waits")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke once the transaction ended: %v", err)
	}
	var owner string
	if err := app.QueryRow(ctx, "SELECT tableowner::text FROM pg_tables WHERE tablename = 'mine'").Scan(&owner); err != nil || owner != f.loc.Owner {
		t.Fatalf("the table's owner is %q (%v), want %s", owner, err, f.loc.Owner)
	}
}
