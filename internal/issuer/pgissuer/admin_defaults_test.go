package pgissuer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A database administrator may give rekey's admin role defaults (ALTER
// ROLE ... SET) that make its sessions read-only or cut their statements
// and transactions short, meant for people's sessions. None of them keeps
// rekey from minting, verifying and revoking: a revocation failing on
// them every time would leave the old credential working past its grace.
func TestAdminRoleDefaultsSetByHandDoNotBlockRotation(t *testing.T) {
	for name, setting := range map[string]string{
		"read only":             "default_transaction_read_only = on",
		"statement timeout":     "statement_timeout = 1",
		"idle in a transaction": "idle_in_transaction_session_timeout = 1",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			admin := withAdmin(t, f, "CREATEROLE")
			mustExec(t, f.db.ServerURL, "ALTER ROLE "+pgx.Identifier{admin}.Sanitize()+" SET "+setting)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
			if err != nil {
				t.Fatalf("mint: %v", err)
			}
			if err := f.iss.Verify(ctx, "inst-1", old.ID); err != nil {
				t.Fatalf("verify: %v", err)
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
