package pgissuer_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A partner renames a credential's role by hand: the role keeps its SCRAM
// password and rekey's comment, so the credential logs in under the new
// name. Revoking the credential finds the role by its comment and drops
// it; a renamed role of another rotation is left alone.
func TestRevokeFindsARoleRenamedByHand(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rename := func(rotation string) (string, string) {
		c, err := f.iss.Mint(ctx, "inst-1", rotation)
		if err != nil {
			t.Fatal(err)
		}
		name := c.ID + "_kept"
		mustExec(t, f.db.ServerURL, "ALTER ROLE "+pgx.Identifier{c.ID}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize())
		t.Cleanup(func() { mustExec(t, f.db.ServerURL, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()) })
		u, _ := url.Parse(c.Config["DATABASE_URL"].Reveal())
		password, _ := u.User.Password()
		u.User = url.UserPassword(name, password)
		if !logsIn(ctx, u.String()) {
			t.Fatalf("the renamed role %s does not log in", name)
		}
		return c.ID, u.String()
	}
	oldID, oldURL := rename("rot-1")
	_, otherURL := rename("rot-2")
	session := connect(t, oldURL)
	if err := f.iss.Revoke(ctx, "inst-1", oldID); err != nil {
		t.Fatalf("revoke of a renamed role: %v", err)
	}
	if logsIn(ctx, oldURL) {
		t.Fatal("the revoked credential still logs in under its new name")
	}
	if err := session.Ping(ctx); err == nil {
		t.Fatal("the renamed role's session survived its revocation")
	}
	if got := roleCount(t, f.db.ServerURL, oldID); got != 0 {
		t.Fatal("the renamed role is still there")
	}
	if !logsIn(ctx, otherURL) {
		t.Fatal("the renamed role of another rotation was touched")
	}
	if err := f.iss.Revoke(ctx, "inst-1", oldID); err != nil {
		t.Fatalf("revoking it again: %v", err)
	}
}
