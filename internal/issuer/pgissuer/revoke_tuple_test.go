package pgissuer_test

import (
	"context"
	"testing"
	"time"
)

// Any role may change its own password, so the holder of the old credential
// can leave ALTER ROLE CURRENT_USER PASSWORD (after SET ROLE NONE) uncommitted in a transaction of
// its own: the role's catalog row stays locked, and rekey's ALTER ROLE ...
// NOLOGIN waits behind it. That wait must not keep the credential working,
// nor its session open: the session is ended, the role locked out.
func TestRevokeIsNotHeldUpByTheOldCredentialLockingItsOwnRole(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	dsn := old.Config["DATABASE_URL"].Reveal()
	thief := connect(t, dsn)
	if _, err := thief.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	// The credential acts as the owner role (SET role): back to itself first.
	if _, err := thief.Exec(ctx, "SET ROLE NONE; ALTER ROLE CURRENT_USER PASSWORD 'chosen-by-the-thief'"); err != nil {
		t.Fatalf("the old credential changes its own password: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	start := time.Now()
	err = f.iss.Revoke(rctx, "inst-1", old.ID)
	t.Logf("revoke: %v after %s", err, time.Since(start).Round(time.Millisecond))
	if logsIn(ctx, dsn) {
		t.Fatal("the old credential still logs in after its revocation")
	}
	var one int
	if err := thief.QueryRow(ctx, "SELECT 1").Scan(&one); err == nil {
		t.Fatal("the thief's session, holding its role's row, outlived the revocation")
	}
	if err != nil {
		// A transient failure is retried: the next attempt drops the role.
		if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
			t.Fatalf("revoke again: %v", err)
		}
	}
	if n := roleCount(t, f.db.ServerURL, old.ID); n != 0 {
		t.Fatalf("%d roles named %s remain", n, old.ID)
	}
}
