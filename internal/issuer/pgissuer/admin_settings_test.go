package pgissuer_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

// adminIssuer is an issuer on f's server as the admin of adminURL, under
// f's key, with pools of its own: a default given to the admin role
// since f's issuer connected applies to its sessions.
func adminIssuer(t *testing.T, f *fixture, adminURL string) *pgissuer.Issuer {
	t.Helper()
	servers, err := pgissuer.ParseServers([]byte(`{"main":"` + adminURL + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: f.key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

// wantNamed fails t unless err is a transient issuer error of code whose
// text holds every one of want and not the admin URL's password.
func wantNamed(t *testing.T, err error, code, adminURL string, want ...string) {
	t.Helper()
	var ie *issuer.Error
	if err == nil || !issuer.IsTransient(err) || !errors.As(err, &ie) || ie.Code != code {
		t.Fatalf("err = %v, want a transient %s", err, code)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err = %q, want it to say %q", err, w)
		}
	}
	u, _ := url.Parse(adminURL)
	if password, _ := u.User.Password(); strings.Contains(err.Error(), password) {
		t.Errorf("err = %q quotes the admin password", err)
	}
}

// A read-only default given to rekey's admin role fails its mints and
// revocations as before (postgres_error, retried), and the error says so,
// naming the role and what undoes it; once reset, both work again.
func TestAdminRoleReadOnlyIsNamed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, adminURL := newAdmin(t, f, "CREATEROLE")
	old, err := adminIssuer(t, f, adminURL).Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	a := pgx.Identifier{admin}.Sanitize()
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET default_transaction_read_only = on")
	ro := adminIssuer(t, f, adminURL)
	want := []string{"rekey's admin role runs read-only (default_transaction_read_only is on for role " + a + ")",
		"ALTER ROLE " + a + " RESET default_transaction_read_only"}
	_, err = ro.Mint(ctx, "inst-1", "rot-2")
	wantNamed(t, err, pgissuer.CodePostgres, adminURL, want...)
	err = ro.Revoke(ctx, "inst-1", old.ID)
	wantNamed(t, err, pgissuer.CodePostgres, adminURL, want...)

	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" RESET default_transaction_read_only")
	rw := adminIssuer(t, f, adminURL)
	if err := rw.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke once reset: %v", err)
	}
	c, err := rw.Mint(ctx, "inst-1", "rot-2")
	if err != nil {
		t.Fatalf("mint once reset: %v", err)
	}
	if err := rw.Revoke(ctx, "inst-1", c.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
}

// A statement_timeout given to the admin role cuts a mint's wait for the
// role's lock short (server_unavailable, retried, as before), and the error
// names it, its value and what undoes it; a mint with nothing to wait for
// works under it.
func TestAdminRoleStatementTimeoutIsNamed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, adminURL := newAdmin(t, f, "CREATEROLE")
	a := pgx.Identifier{admin}.Sanitize()
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET statement_timeout = '300ms'")
	iss := adminIssuer(t, f, adminURL)
	holder := connect(t, f.db.ServerURL)
	key := iss.LockKey(iss.RoleName("inst-1", "rot-1"))
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	_, err := iss.Mint(ctx, "inst-1", "rot-1")
	wantNamed(t, err, pgissuer.CodeUnavailable, adminURL,
		"a statement of rekey's admin role ran past statement_timeout (300ms for role "+a+")",
		"ALTER ROLE "+a+" RESET statement_timeout")

	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
		t.Fatal(err)
	}
	c, err := iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint with the lock free: %v", err)
	}
	if err := iss.Revoke(ctx, "inst-1", c.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
}

// An admin role whose sessions act as another role (ALTER ROLE ... SET
// role) is refused CREATE ROLE as before (not_permitted), and the error
// names both roles and what undoes it.
func TestAdminRoleActingAsAnotherRoleIsNamed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, adminURL := newAdmin(t, f, "CREATEROLE")
	a := pgx.Identifier{admin}.Sanitize()
	other := pgx.Identifier{admin + "_other"}.Sanitize()
	mustExec(t, f.db.ServerURL, "CREATE ROLE "+other+" NOLOGIN")
	t.Cleanup(func() { _ = pgtest.Exec(ctx, f.db.ServerURL, "DROP ROLE IF EXISTS "+other) })
	mustExec(t, f.db.ServerURL, "GRANT "+other+" TO "+a)
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET role TO "+other)
	_, err := adminIssuer(t, f, adminURL).Mint(ctx, "inst-1", "rot-1")
	wantNamed(t, err, pgissuer.CodeNotPermitted, adminURL,
		"rekey's admin role "+a+" acts as role "+other+", which may not do this (role is set to "+other+" for role "+a+")",
		"ALTER ROLE "+a+" RESET role")
}

// A lock_timeout given to the admin role fails a mint whose CREATE ROLE
// waits for the catalog (postgres_error, retried, as before), and the
// error names it.
func TestAdminRoleLockTimeoutIsNamed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, adminURL := newAdmin(t, f, "CREATEROLE")
	a := pgx.Identifier{admin}.Sanitize()
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET lock_timeout = '200ms'")
	iss := adminIssuer(t, f, adminURL)
	holder := connect(t, f.db.ServerURL)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, "LOCK TABLE pg_catalog.pg_authid IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	_, err = iss.Mint(ctx, "inst-1", "rot-1")
	wantNamed(t, err, pgissuer.CodePostgres, adminURL,
		"a statement of rekey's admin role waited for a lock past lock_timeout (200ms for role "+a+")",
		"ALTER ROLE "+a+" RESET lock_timeout")
}

// AdminSettings, which a worker reads once at its start, names each
// default of the admin role's that fails rekey's statements, with what
// undoes it, and nothing for an admin role without them.
func TestAdminSettingsNamesTheAdminRolesDefaults(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, adminURL := newAdmin(t, f, "CREATEROLE")
	if got := adminIssuer(t, f, adminURL).AdminSettings(ctx); len(got) != 0 {
		t.Fatalf("AdminSettings = %q, want none", got)
	}
	a := pgx.Identifier{admin}.Sanitize()
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET default_transaction_read_only = on")
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET statement_timeout = '300ms'")
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET idle_in_transaction_session_timeout = '20s'")
	got := adminIssuer(t, f, adminURL).AdminSettings(ctx)
	text := strings.Join(got, "\n")
	if len(got) != 2 {
		t.Fatalf("AdminSettings = %q, want the read-only default and the statement_timeout", got)
	}
	for _, want := range []string{
		"server main: rekey's admin role runs read-only (default_transaction_read_only is on for role " + a + "): every mint and revocation fails; ALTER ROLE " + a + " RESET default_transaction_read_only",
		"server main: statement_timeout is 300ms for role " + a,
		"ALTER ROLE " + a + " RESET statement_timeout",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("AdminSettings = %q, want it to say %q", got, want)
		}
	}
}

// An admin role whose sessions act as the instance's owner role (ALTER
// ROLE ... SET role TO the owner) is not taken for an owner role that is
// rekey's admin role: the mint fails as any role default of the admin's
// does (not_permitted, retried, CREATE ROLE being the owner's to refuse),
// naming the default and what undoes it; once reset, the mint works.
func TestAdminRoleActingAsTheOwnerRoleIsNamed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, adminURL := newAdmin(t, f, "CREATEROLE")
	a := pgx.Identifier{admin}.Sanitize()
	owner := pgx.Identifier{f.loc.Owner}.Sanitize()
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET role TO "+owner)
	_, err := adminIssuer(t, f, adminURL).Mint(ctx, "inst-1", "rot-1")
	wantNamed(t, err, pgissuer.CodeNotPermitted, adminURL,
		"rekey's admin role "+a+" acts as role "+owner+", which may not do this (role is set to "+owner+" for role "+a+")",
		"ALTER ROLE "+a+" RESET role")

	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" RESET role")
	iss := adminIssuer(t, f, adminURL)
	c, err := iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint once reset: %v", err)
	}
	if err := iss.Revoke(ctx, "inst-1", c.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
}

// A lock_timeout given to the admin role fails a mint that waits for a
// lock of the catalog, and the question that names it reads the same
// catalog: it waits without the admin's lock_timeout, and the error
// names the role's setting, not the question's own. Here a session holds
// pg_db_role_setting, which the mint's ALTER ROLE ... SET and the question
// both need, until the mint answers (a second and a half at most); the
// issuer's connection is made before (a new session reads that catalog to
// start), and every wait has a deadline.
func TestAdminRoleLockTimeoutIsNamedWhenTheCatalogIsHeld(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, adminURL := newAdmin(t, f, "CREATEROLE")
	a := pgx.Identifier{admin}.Sanitize()
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+a+" SET lock_timeout = '200ms'")
	iss := adminIssuer(t, f, adminURL)
	if _, err := iss.Mint(ctx, "inst-1", "rot-0"); err != nil {
		t.Fatalf("mint with the catalog free: %v", err)
	}
	holder := connect(t, f.db.ServerURL)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	release := sync.OnceFunc(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(c)
		close(released)
	})
	t.Cleanup(release)
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'; LOCK TABLE pg_catalog.pg_db_role_setting IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(1500*time.Millisecond, release)
	defer timer.Stop()
	mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
	defer mcancel()
	_, err = iss.Mint(mctx, "inst-1", "rot-1")
	// Every new session of the server waits while the catalog is held:
	// the lock goes as soon as the mint has answered.
	release()
	<-released
	wantNamed(t, err, pgissuer.CodePostgres, adminURL,
		"a statement of rekey's admin role waited for a lock past lock_timeout (200ms for role "+a+")",
		"ALTER ROLE "+a+" RESET lock_timeout")
}
