package pgissuer_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
)

// withLockWait gives the fixture an issuer on its server, with a fresh key,
// that waits at most d for a role's lock.
func withLockWait(t *testing.T, f *fixture, d time.Duration) {
	t.Helper()
	servers, err := pgissuer.ParseServers([]byte(`{"main":"` + f.db.ServerURL + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	iss, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: key, LockWait: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	f.iss = iss
}

// holdLock takes the advisory lock key in an admin session of its own, as
// a mint or revoke of another worker would, until the test ends or the
// returned function is called.
func holdLock(t *testing.T, f *fixture, key int64) (release func()) {
	t.Helper()
	conn := connect(t, f.db.ServerURL)
	if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	return func() { conn.Close(context.Background()) }
}

// logsIn reports whether a credential's URL still opens a session.
func logsIn(ctx context.Context, dsn string) bool {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	c.Close(ctx)
	return true
}

func isRoleBusy(err error) bool {
	var ie *issuer.Error
	return issuer.IsTransient(err) && errors.As(err, &ie) && ie.Code == pgissuer.CodeRoleBusy
}

// Every role of the server reads pg_roles, so a lock keyed on what it lists
// is one anybody can hold: the thief of the old credential in a session of
// its own, or another tenant of the server, on every role rekey minted.
// Neither holds up a revocation.
func TestRevokeIsNotHeldUpByLocksOtherRolesCanTake(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	thief := connect(t, old.Config["DATABASE_URL"].Reveal())
	if _, err := thief.Exec(ctx, "SELECT pg_advisory_lock(hashtext(session_user::text))"); err != nil {
		t.Fatalf("the old credential takes a lock: %v", err)
	}
	tenantRole := pgx.Identifier{f.db.Name + "_tenant"}.Sanitize()
	mustExec(t, f.db.ServerURL, "CREATE ROLE "+tenantRole+" LOGIN PASSWORD 'tenant-pw'")
	t.Cleanup(func() { mustExec(t, f.db.ServerURL, "DROP ROLE IF EXISTS "+tenantRole) })
	u, _ := url.Parse(f.db.ServerURL)
	u.User = url.UserPassword(f.db.Name+"_tenant", "tenant-pw")
	tenant := connect(t, u.String())
	if _, err := tenant.Exec(ctx, `SELECT pg_advisory_lock(hashtext(rolname::text)), pg_advisory_lock(hashtext(rolname))
		FROM pg_roles WHERE starts_with(rolname, $1)`, pgissuer.RolePrefix); err != nil {
		t.Fatalf("another tenant takes the locks of rekey's roles: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := f.iss.Revoke(rctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke while other roles hold locks on its name: %v", err)
	}
	if logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("the revoked credential still logs in")
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the revoked role is still there")
	}
}

// While another mint or revoke of the role holds its lock, a revocation
// has already locked the credential out and ended its sessions; it waits a
// bounded time for the lock, fails transiently (role_busy), and finishes
// on its retry.
func TestRevokeCutsTheCredentialBeforeWaitingForItsLock(t *testing.T) {
	f := newFixture(t)
	withLockWait(t, f, 300*time.Millisecond)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	session := connect(t, old.Config["DATABASE_URL"].Reveal())
	release := holdLock(t, f, f.iss.LockKey(old.ID))
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := f.iss.Revoke(rctx, "inst-1", old.ID); !isRoleBusy(err) {
		t.Fatalf("revoke while its lock is held = %v, want a transient %s", err, pgissuer.CodeRoleBusy)
	}
	if logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("the credential still logs in while its revocation waits for the lock")
	}
	if err := session.Ping(ctx); err == nil {
		t.Fatal("the credential's session survived while its revocation waited for the lock")
	}
	release()
	if err := f.iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke once the lock is free: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the revoked role is still there")
	}
}

// Revocations waiting for held locks, as many as the admin pool has
// connections (4), give the connections back after the bounded wait: a
// mint of another instance on the server still gets one.
func TestRevocationsWaitingForLocksLeaveThePoolToOthers(t *testing.T) {
	f := newFixture(t)
	withLockWait(t, f, 300*time.Millisecond)
	ctx := context.Background()
	var ids []string
	for _, rot := range []string{"rot-1", "rot-2", "rot-3", "rot-4"} {
		c, err := f.iss.Mint(ctx, "inst-1", rot)
		if err != nil {
			t.Fatal(err)
		}
		holdLock(t, f, f.iss.LockKey(c.ID))
		ids = append(ids, c.ID)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.iss.Revoke(rctx, "inst-1", id) }()
	}
	f.locs.mu.Lock()
	f.locs.m["inst-2"] = f.loc
	f.locs.mu.Unlock()
	mctx, mcancel := context.WithTimeout(ctx, 15*time.Second)
	defer mcancel()
	c, err := f.iss.Mint(mctx, "inst-2", "rot-1")
	if err != nil {
		t.Fatalf("mint of another instance while four revocations wait for locks: %v", err)
	}
	t.Cleanup(func() { _ = f.iss.Revoke(ctx, "inst-2", c.ID) })
	wg.Wait()
	for i, err := range errs {
		if !isRoleBusy(err) {
			t.Errorf("revoke %d while its lock is held = %v, want %s", i, err, pgissuer.CodeRoleBusy)
		}
	}
}
