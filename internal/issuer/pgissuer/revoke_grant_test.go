package pgissuer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// An administrator who grants the old role to rekey's admin role by hand
// (to look at what it owns) and leaves the transaction open holds the
// membership's row, and rekey's own grant of the role to itself waits
// behind it. That wait must not keep the credential working nor hold the
// revocation until its deadline: the role is locked out and the call
// ends soon after, done (a superuser needs no grant) or failed
// transiently, and once the transaction ends a retry drops the role.
func TestRevokeIsNotHeldUpByAnUncommittedGrantOfTheRole(t *testing.T) {
	for name, attrs := range map[string]string{"superuser": "SUPERUSER", "createrole": "CREATEROLE"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			admin := withAdmin(t, f, attrs)
			ctx := context.Background()
			old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
			if err != nil {
				t.Fatal(err)
			}
			dsn := old.Config["DATABASE_URL"].Reveal()
			dba := connect(t, f.db.ServerURL)
			if _, err := dba.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			if _, err := dba.Exec(ctx, "GRANT "+pgx.Identifier{old.ID}.Sanitize()+" TO "+pgx.Identifier{admin}.Sanitize()); err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(ctx, 8*time.Second)
			defer cancel()
			start := time.Now()
			err = f.iss.Revoke(rctx, "inst-1", old.ID)
			took := time.Since(start)
			t.Logf("revoke: %v after %s", err, took.Round(time.Millisecond))
			if err != nil && !isRoleBusy(err) {
				t.Fatalf("revoke behind an uncommitted grant: %v, want done or a transient role_busy", err)
			}
			if took > 5*time.Second {
				t.Fatalf("revoke waited %s for the grant", took)
			}
			if logsIn(ctx, dsn) {
				t.Fatal("the old credential still logs in")
			}
			if _, err := dba.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
				t.Fatalf("revoke once the grant is rolled back: %v", err)
			}
			if n := roleCount(t, f.db.ServerURL, old.ID); n != 0 {
				t.Fatalf("%d roles named %s remain", n, old.ID)
			}
		})
	}
}
