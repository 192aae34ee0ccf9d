package pgissuer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/pgtest"
)

// A database administrator may give rekey's admin role defaults (ALTER
// ROLE ... SET) meant for people's sessions: read-only, statements or
// transactions cut short, acting as another role. None of them keeps
// rekey from minting, verifying and revoking: a revocation failing on
// them every time would leave the old credential working past its grace.
// The admin_url may go through PgBouncer, so rekey undoes them for each of
// its transactions, not with settings sent at connection.
func TestAdminRoleDefaultsSetByHandDoNotBlockRotation(t *testing.T) {
	for name, setting := range map[string]string{
		"read only":             "default_transaction_read_only = on",
		"statement timeout":     "statement_timeout = 1",
		"idle in a transaction": "idle_in_transaction_session_timeout = 1",
		"another role":          "", // role = a role of the test's
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			a := pgx.Identifier{withAdmin(t, f, "CREATEROLE")}.Sanitize()
			if name == "another role" {
				// A role the admin may act as, with none of its powers.
				other := pgx.Identifier{f.db.Name + "_other"}.Sanitize()
				mustExec(t, f.db.ServerURL, "CREATE ROLE "+other+" NOLOGIN")
				t.Cleanup(func() { _ = pgtest.Exec(context.Background(), f.db.ServerURL, "DROP ROLE IF EXISTS "+other) })
				mustExec(t, f.db.ServerURL, "GRANT "+other+" TO "+a)
				setting = "role = " + other
			}
			mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET "+setting)
			// The tenant owns the database and may give it defaults too
			// (reassign connects to it).
			db := pgx.Identifier{f.db.Name}.Sanitize()
			mustExec(t, f.db.ServerURL, "ALTER DATABASE "+db+" SET "+setting)
			t.Cleanup(func() { _ = pgtest.Exec(context.Background(), f.db.ServerURL, "ALTER DATABASE "+db+" RESET ALL") })
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
			if err != nil {
				t.Fatalf("mint: %v", err)
			}
			if err := f.iss.Verify(ctx, "inst-1", old.ID); err != nil {
				t.Fatalf("verify: %v", err)
			}
			// The credential leaves an object, so that the revocation
			// hands it to the owner role in the database (reassign).
			cred := connect(t, old.Config["DATABASE_URL"].Reveal())
			if _, err := cred.Exec(ctx, "BEGIN READ WRITE; SET LOCAL statement_timeout = 0; "+
				"SET LOCAL idle_in_transaction_session_timeout = 0; CREATE TABLE left_behind (id int); COMMIT"); err != nil {
				t.Fatalf("create a table as the credential: %v", err)
			}
			if _, err := f.iss.Usage(ctx, "inst-1", old.ID); err != nil {
				t.Fatalf("usage: %v", err)
			}
			if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
				t.Fatal("the old credential still logs in")
			}
			if n := roleCount(t, f.db.ServerURL, old.ID); n != 0 {
				t.Fatalf("%d roles named %s remain", n, old.ID)
			}
		})
	}
}
