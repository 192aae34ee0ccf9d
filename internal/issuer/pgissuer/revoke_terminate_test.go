package pgissuer_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// The server refuses to end the old credential's sessions: an admin role
// that does not inherit the privileges of the roles granted to it
// (NOINHERIT) may not signal their backends. The revocation fails, and is
// retried, but the credential is locked out first: a refused
// pg_terminate_backend must not leave it logging in anew until the
// revocation goes dead.
func TestRevokeLocksOutEvenWhenItsSessionsCannotBeEnded(t *testing.T) {
	f := newFixture(t)
	withAdmin(t, f, "CREATEROLE NOINHERIT")
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	session := connect(t, old.Config["DATABASE_URL"].Reveal())
	if err := session.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = f.iss.Revoke(rctx, "inst-1", old.ID)
	if err == nil {
		t.Skip("this server lets the admin end the sessions: nothing refused")
	}
	if !issuer.IsTransient(err) {
		t.Fatalf("revoke whose sessions cannot be ended = %v, want a transient failure", err)
	}
	if logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatalf("the old credential still logs in after a revocation that failed with %v", err)
	}
}
