package pgissuer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
)

// An owner role whose powers a customer's credential would get (it joins
// the owner and acts as it) fails the mint, permanently, before any role
// exists: rekey's admin role, a superuser, a role with CREATEROLE,
// CREATEDB, REPLICATION or BYPASSRLS, a built-in pg_ role such as
// pg_execute_server_program (programs run on the database server), or a
// group role that is a member of one of those, however deep.
func TestMintRefusesAnOwnerRoleWithPowers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var admin string
	if err := connect(t, f.db.ServerURL).QueryRow(ctx, "SELECT current_user").Scan(&admin); err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	role := func(name, options string, in ...string) string {
		name = name + "_" + hex.EncodeToString(suffix)
		sql := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " NOLOGIN " + options
		mustExec(t, f.db.ServerURL, sql)
		t.Cleanup(func() { mustExec(t, f.db.ServerURL, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()) })
		for _, group := range in {
			mustExec(t, f.db.ServerURL, "GRANT "+pgx.Identifier{group}.Sanitize()+" TO "+pgx.Identifier{name}.Sanitize())
		}
		return name
	}
	superuser := role("super", "SUPERUSER")
	reader := role("reader", "", "pg_read_server_files")
	owners := map[string]string{
		"rekey's admin role":        admin,
		"a superuser":               superuser,
		"CREATEROLE":                role("creator", "CREATEROLE"),
		"CREATEDB":                  role("dbmaker", "CREATEDB"),
		"BYPASSRLS":                 role("bypass", "BYPASSRLS"),
		"pg_execute_server_program": "pg_execute_server_program",
		"member of a superuser":     role("undercover", "", superuser),
		"member of a member of pg_read_server_files": role("deeper", "", reader),
	}
	before := roleCount(t, f.db.ServerURL, pgissuer.RolePrefix)
	for name, owner := range owners {
		t.Run(name, func(t *testing.T) {
			loc := f.loc
			loc.Owner = owner
			f.locs.mu.Lock()
			f.locs.m["inst-owner"] = loc
			f.locs.mu.Unlock()
			_, err := f.iss.Mint(ctx, "inst-owner", "rot-"+strings.ReplaceAll(name, " ", "-"))
			var ie *issuer.Error
			if !issuer.IsPermanent(err) || !errors.As(err, &ie) || ie.Code != pgissuer.CodeUnsafeOwner ||
				!strings.Contains(err.Error(), owner) {
				t.Fatalf("mint with owner %s = %v, want a permanent %s naming it", owner, err, pgissuer.CodeUnsafeOwner)
			}
		})
	}
	if after := roleCount(t, f.db.ServerURL, pgissuer.RolePrefix); after != before {
		t.Errorf("%d roles minted for unsafe owners", after-before)
	}
	// The fixture's owner, a plain NOLOGIN group role owning the database, still mints.
	if _, err := f.iss.Mint(ctx, "inst-1", "rot-safe"); err != nil {
		t.Fatalf("mint with a plain owner: %v", err)
	}
}
