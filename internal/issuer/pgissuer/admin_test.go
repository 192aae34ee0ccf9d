package pgissuer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

// withCreateRoleAdmin gives the fixture an issuer whose admin role is not a
// superuser but has CREATEROLE (and, on PostgreSQL 16 and later, the ADMIN
// option on the owner role), as the README allows.
func withCreateRoleAdmin(t *testing.T, f *fixture) {
	t.Helper()
	withAdmin(t, f, "CREATEROLE")
}

// withAdmin gives the fixture an issuer whose admin role has attributes
// attrs, and the ADMIN option on the owner role, and returns its name.
func withAdmin(t *testing.T, f *fixture, attrs string) string {
	t.Helper()
	admin, adminURL := newAdmin(t, f, attrs)
	f.useServers(t, `{"main":"`+adminURL+`"}`)
	return admin
}

// newAdmin creates a login role with attributes attrs and the ADMIN option
// on f's owner role, dropped at the test's end, and returns its name and
// an admin URL that logs in as it.
func newAdmin(t *testing.T, f *fixture, attrs string) (string, string) {
	t.Helper()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	admin := "admin_" + hex.EncodeToString(suffix)
	password := hex.EncodeToString(suffix) + "-pw"
	a := pgx.Identifier{admin}.Sanitize()
	mustExec(t, f.db.ServerURL, "CREATE ROLE "+a+" LOGIN "+attrs+" PASSWORD '"+password+"'")
	mustExec(t, f.db.ServerURL, "GRANT "+pgx.Identifier{f.loc.Owner}.Sanitize()+" TO "+a+" WITH ADMIN OPTION")
	t.Cleanup(func() {
		ctx := context.Background()
		_ = pgtest.Exec(ctx, f.db.ServerURL, "REASSIGN OWNED BY "+a+" TO CURRENT_USER")
		_ = pgtest.Exec(ctx, f.db.URL, "DROP OWNED BY "+a)
		_ = pgtest.Exec(ctx, f.db.ServerURL, "DROP OWNED BY "+a)
		_ = pgtest.Exec(ctx, f.db.ServerURL, "DROP ROLE IF EXISTS "+a)
	})
	u, err := url.Parse(f.db.ServerURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(admin, password)
	return admin, u.String()
}

// useServers replaces f's issuer with one on the servers of
// REKEY_POSTGRES_SERVERS's JSON, with a fresh key.
func (f *fixture) useServers(t *testing.T, serversJSON string) {
	t.Helper()
	servers, err := pgissuer.ParseServers([]byte(serversJSON))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	iss, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	f.iss = iss
}

// With an admin role that has CREATEROLE but is no superuser, a rotation
// works end to end: the old role's live session is ended at its
// revocation, what it owns goes to the owner role, and it is dropped.
func TestCreateRoleAdminRevokesARoleWithASession(t *testing.T) {
	f := newFixture(t)
	withCreateRoleAdmin(t, f)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if err := f.iss.Verify(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("verify: %v", err)
	}
	oldConn := connect(t, old.Config["DATABASE_URL"].Reveal())
	if _, err := oldConn.Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int)"); err != nil {
		t.Fatalf("old role creates a table of its own: %v", err)
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if err := oldConn.Ping(ctx); err == nil {
		t.Fatal("the old role's session survived its revocation")
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
}

// An admin URL that carries its user and password as query parameters
// (libpq's and pgx's ?user=…&password=… form) lends customers its host,
// port and parameters, never those: no credential's URL holds the admin
// password or logs in as the admin, and the database stays the instance's.
func TestAdminCredentialsInTheQueryStayOutOfCredentials(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := url.Parse(f.db.ServerURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	q := u.Query()
	q.Set("user", u.User.Username())
	q.Set("password", password)
	q.Set("dbname", "postgres")
	u.User, u.RawQuery = nil, q.Encode()
	f.useServers(t, `{"main":"`+u.String()+`"}`)
	iss := f.iss
	c, err := iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	defer iss.Revoke(ctx, "inst-1", c.ID) //nolint:errcheck
	for name, v := range c.Config {
		if strings.Contains(v.Reveal(), password) && name != "DATABASE_PASSWORD" {
			t.Fatalf("%s carries the admin password", name)
		}
	}
	if err := iss.Verify(ctx, "inst-1", c.ID); err != nil {
		t.Fatalf("verify: %v", err)
	}
	var user, db string
	if err := connect(t, c.Config["DATABASE_URL"].Reveal()).QueryRow(ctx, "SELECT session_user::text, current_database()").Scan(&user, &db); err != nil {
		t.Fatal(err)
	}
	if user != c.ID || db != f.db.Name {
		t.Fatalf("DATABASE_URL logs in as %s to %s, want %s to %s", user, db, c.ID, f.db.Name)
	}
}

// The owner role owns the instance's database, so a tenant can give it
// defaults (ALTER DATABASE ... SET) that would apply to rekey's own session
// there: a read-only default, a timeout of a millisecond, or a role to act
// as. None of them keeps rekey from revoking an old credential.
func TestDatabaseDefaultsSetByTheTenantDoNotBlockRevoke(t *testing.T) {
	for name, setting := range map[string]string{
		"read only":    "default_transaction_read_only = on",
		"timeout":      "statement_timeout = 1",
		"another role": "role = %s",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
			if err != nil {
				t.Fatalf("mint: %v", err)
			}
			tenant := connect(t, old.Config["DATABASE_URL"].Reveal())
			if _, err := tenant.Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int)"); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(setting, "%s") {
				setting = strings.ReplaceAll(setting, "%s", pgx.Identifier{f.loc.Owner}.Sanitize())
			}
			if _, err := tenant.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+" SET "+setting); err != nil {
				t.Fatalf("the tenant sets %s: %v", setting, err)
			}
			if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
				t.Fatal("the old role is still there")
			}
		})
	}
}
