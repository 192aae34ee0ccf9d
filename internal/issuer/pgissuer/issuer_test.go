package pgissuer_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
)

func TestRotationKeepsPrivilegesAndDropsTheOldRole(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if err := f.iss.Verify(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("verify: %v", err)
	}
	oldConn := connect(t, old.Config["DATABASE_URL"].Reveal())
	if _, err := oldConn.Exec(ctx, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('by old')"); err != nil {
		t.Fatalf("old role creates a table: %v", err)
	}
	next, err := f.iss.Mint(ctx, "inst-1", "rot-2")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if next.ID == old.ID || next.Config["DATABASE_PASSWORD"].Reveal() == old.Config["DATABASE_PASSWORD"].Reveal() {
		t.Fatal("a new rotation returned the old role or password")
	}
	newConn := connect(t, next.Config["DATABASE_URL"].Reveal())
	if _, err := newConn.Exec(ctx, "INSERT INTO notes VALUES ('by new'); UPDATE notes SET body = body || '!'"); err != nil {
		t.Fatalf("new role writes the old role's table: %v", err)
	}
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if err := oldConn.Ping(ctx); err == nil {
		t.Fatal("the old role's session survived its revocation")
	}
	if _, err := pgx.Connect(ctx, old.Config["DATABASE_URL"].Reveal()); err == nil {
		t.Fatal("the old role still logs in")
	}
	var n int
	if err := newConn.QueryRow(ctx, "SELECT count(*) FROM notes WHERE body LIKE '%!'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after revoke the new role reads %d rows (%v), want 2", n, err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatalf("the old role is still there")
	}
}

func TestEveryStepTwiceAndConcurrentlyIsOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before := roleCount(t, f.db.ServerURL, pgissuer.RolePrefix)
	creds := make([]issuer.Credential, 8)
	errs := make([]error, 8)
	each := func(fn func(i int)) {
		var wg sync.WaitGroup
		for i := range creds {
			wg.Add(1)
			go func() { defer wg.Done(); fn(i) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
	}
	each(func(i int) { creds[i], errs[i] = f.iss.Mint(ctx, "inst-1", "rot-1") })
	again, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(creds, again) {
		if c.ID != creds[0].ID || c.Config["DATABASE_URL"].Reveal() != creds[0].Config["DATABASE_URL"].Reveal() {
			t.Fatal("reruns of one mint returned different credentials")
		}
	}
	if got := roleCount(t, f.db.ServerURL, pgissuer.RolePrefix); got != before+1 {
		t.Fatalf("8 concurrent mints and a rerun made %d roles, want 1", got-before)
	}
	each(func(i int) { errs[i] = f.iss.Verify(ctx, "inst-1", creds[0].ID) })
	connect(t, creds[0].Config["DATABASE_URL"].Reveal())
	each(func(i int) { errs[i] = f.iss.Revoke(ctx, "inst-1", creds[0].ID) })
	if err := f.iss.Revoke(ctx, "inst-1", creds[0].ID); err != nil {
		t.Fatalf("revoking a revoked role: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, pgissuer.RolePrefix); got != before {
		t.Fatalf("%d roles left after revoke, want %d", got, before)
	}
}

func TestRevokeNeverTouchesARoleRekeyDidNotMint(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	f.locs.m["inst-2"] = f.loc
	foreign := pgissuer.RolePrefix + strings.ToLower(f.db.Name)
	mustExec(t, f.db.ServerURL, "CREATE ROLE "+foreign+" LOGIN")
	t.Cleanup(func() { _ = f.iss.Revoke(ctx, "inst-1", other.ID) })
	t.Cleanup(func() { mustExec(t, f.db.ServerURL, "DROP ROLE "+foreign) })
	mustExec(t, f.db.ServerURL, "COMMENT ON ROLE "+foreign+" IS 'rekey instance=inst-1 rotation=rot-9'")
	for _, tc := range []struct{ name, instance, role string }{
		{"role without rekey's name", "inst-1", foreign},
		{"rekey's role of another instance", "inst-2", other.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.iss.Revoke(ctx, tc.instance, tc.role)
			if !issuer.IsPermanent(err) || !strings.Contains(err.Error(), tc.role) {
				t.Fatalf("revoke = %v, want a permanent error naming %s", err, tc.role)
			}
			var canLogin bool
			conn := connect(t, f.db.ServerURL)
			if err := conn.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", tc.role).Scan(&canLogin); err != nil || !canLogin {
				t.Fatalf("role %s was touched: login %v, %v", tc.role, canLogin, err)
			}
		})
	}
}

func TestFaultsArePermanentWithASentenceOrTransient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name      string
		loc       pgissuer.Location
		permanent bool
		names     string
	}{
		{"missing owner role", pgissuer.Location{Server: "main", Database: f.db.Name, Owner: "no_such_owner", ConfigVars: f.loc.ConfigVars}, true, `owner role "no_such_owner"`},
		{"missing database", pgissuer.Location{Server: "main", Database: "no such db", Owner: f.loc.Owner, ConfigVars: f.loc.ConfigVars}, true, `database "no such db"`},
		{"unknown server", pgissuer.Location{Server: "other", Database: f.db.Name, Owner: f.loc.Owner, ConfigVars: f.loc.ConfigVars}, true, `server "other"`},
		{"config var without meaning", pgissuer.Location{Server: "main", Database: f.db.Name, Owner: f.loc.Owner, ConfigVars: []string{"API_KEY"}}, true, "API_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.locs.m["bad"] = tc.loc
			_, err := f.iss.Mint(ctx, "bad", "rot-1")
			if issuer.IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("mint = %v, want permanent=%v naming %s", err, tc.permanent, tc.names)
			}
		})
	}
	t.Run("unreachable server", func(t *testing.T) {
		const password = "s3cret-admin-pw"
		servers, _ := pgissuer.ParseServers([]byte(`{"main":"postgres://admin:` + password + `@127.0.0.1:1/postgres?sslmode=disable"}`))
		iss, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		defer iss.Close()
		for op, call := range map[string]func() error{
			"mint":   func() error { _, err := iss.Mint(ctx, "inst-1", "rot-1"); return err },
			"verify": func() error { return iss.Verify(ctx, "inst-1", "rekey_0123") },
			"revoke": func() error { return iss.Revoke(ctx, "inst-1", "rekey_0123") },
		} {
			err := call()
			var ie *issuer.Error
			if !issuer.IsTransient(err) || !errors.As(err, &ie) || strings.Contains(err.Error(), password) {
				t.Fatalf("%s on a closed port = %v, want a transient issuer.Error without the password", op, err)
			}
		}
	})
}

func TestVerifyRefusesACredentialThatDoesNotLogIn(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.iss.Revoke(ctx, "inst-1", c.ID) //nolint:errcheck
	mustExec(t, f.db.ServerURL, "ALTER ROLE "+c.ID+" PASSWORD 'changed-behind-rekeys-back'")
	if err := f.iss.Verify(ctx, "inst-1", c.ID); !issuer.IsPermanent(err) {
		t.Fatalf("verify of a credential that cannot log in = %v, want permanent", err)
	}
	if err := f.iss.Verify(ctx, "inst-1", "rekey_00000000000000000000"); !issuer.IsPermanent(err) {
		t.Fatalf("verify of a missing role = %v, want permanent", err)
	}
}

func TestUsageSeesALiveSession(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.iss.Revoke(ctx, "inst-1", c.ID) //nolint:errcheck
	if u, err := f.iss.Usage(ctx, "inst-1", c.ID); err != nil || !u.LastUsedAt.IsZero() {
		t.Fatalf("usage of an unused role = %+v, %v; want zero", u, err)
	}
	cfg, _ := pgx.ParseConfig(c.Config["DATABASE_URL"].Reveal())
	cfg.RuntimeParams["application_name"] = "web.1"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.iss.Usage(ctx, "inst-1", c.ID)
	if err != nil || u.LastUsedAt.IsZero() || !strings.Contains(u.LastUsedBy, "web.1") {
		t.Fatalf("usage with a live session = %+v, %v; want now, by web.1", u, err)
	}
	conn.Close(ctx)
	waitFor(t, func() bool {
		var n int
		_ = connect(t, f.db.ServerURL).QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", c.ID).Scan(&n)
		return n == 0
	})
	later, err := f.iss.Usage(ctx, "inst-1", c.ID)
	if err != nil || !later.LastUsedAt.Equal(u.LastUsedAt) {
		t.Fatalf("usage after the session ended = %+v, %v; want the last time seen, %v", later, err, u.LastUsedAt)
	}
	if u, err := f.iss.Usage(ctx, "inst-1", "rekey_00000000000000000000"); err != nil || !u.LastUsedAt.IsZero() {
		t.Fatalf("usage of a missing role = %+v, %v; want zero", u, err)
	}
}

// A client names itself as it likes: one whose application_name holds a
// connection string with its password gives no usage hint, since the hint
// is kept in clear and shown to the customer while the role is live (I5).
func TestUsageDropsAnApplicationNameHoldingAPassword(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.iss.Revoke(ctx, "inst-1", c.ID) //nolint:errcheck
	cfg, _ := pgx.ParseConfig(c.Config["DATABASE_URL"].Reveal())
	cfg.RuntimeParams["application_name"] = "postgres://app:Hunter2-Pa55-w0rd@10.0.0.5/db"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	u, err := f.iss.Usage(ctx, "inst-1", c.ID)
	if err != nil || u.LastUsedAt.IsZero() {
		t.Fatalf("usage with a live session = %+v, %v; want now", u, err)
	}
	if strings.Contains(u.LastUsedBy, "Hunter2") {
		t.Errorf("usage hint kept a password in clear: %q", u.LastUsedBy)
	}
}
