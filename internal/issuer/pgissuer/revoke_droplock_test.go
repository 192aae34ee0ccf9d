package pgissuer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// The customer's app, acting as the owner role, may grant the old role a
// privilege on one of its tables and leave the transaction open: the grant
// holds a lock on the role, which DROP ROLE waits for. The wait is bounded
// like the others (a transient failure, retried), so a revocation does not
// keep one of the server's few admin connections for its whole task.
func TestRevokeDoesNotWaitForeverForALockTheCustomerHoldsOnTheRole(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := f.iss.Mint(ctx, "inst-1", "rot-2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.iss.Revoke(ctx, "inst-1", cur.ID) })
	app := connect(t, cur.Config["DATABASE_URL"].Reveal())
	if _, err := app.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "GRANT SELECT ON t TO "+pgx.Identifier{old.ID}.Sanitize()); err != nil {
		t.Fatalf("the app grants the old role a privilege: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	err = f.iss.Revoke(rctx, "inst-1", old.ID)
	took := time.Since(start)
	t.Logf("revoke: %v after %s", err, took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Fatalf("revoke waited %s for the customer's lock on the role", took.Round(time.Millisecond))
	}
	if !issuer.IsTransient(err) {
		t.Fatalf("revoke while the role is locked = %v, want a transient failure", err)
	}
	if logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("the old credential logs in while its revocation is retried")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke once the lock is gone: %v", err)
	}
	if n := roleCount(t, f.db.ServerURL, old.ID); n != 0 {
		t.Fatalf("%d roles named %s remain", n, old.ID)
	}
}
