package pgissuer_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// slowFront relays connections to the PostgreSQL at backend, each of the
// client's writes delay late: a network whose round trip takes that long.
// It returns the front's host:port.
func slowFront(t *testing.T, backend string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(c, b) }()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						time.Sleep(delay)
						if _, err := b.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// answers reports whether a session opened with dsn answers a query.
func answers(ctx context.Context, dsn string) bool {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "SELECT 1")
	return err == nil
}

// The owner role may give its database a default idle_session_timeout
// (PostgreSQL 14 and later, any role may set it): every session that does
// not say otherwise as it opens is ended once it waits longer than that
// for its client's next query, which over a network is at least a round
// trip. The revocation's connection to the database (REASSIGN OWNED, DROP
// OWNED) was ended so before its first statement, every time, while the
// tenant's apps, sending the setting 0 at connection, worked on: the
// revocation failed, retried until it went dead, the role left in place.
func TestATenantsIdleSessionTimeoutDefaultDoesNotBlockRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	tenant := connect(t, old.Config["DATABASE_URL"].Reveal())
	// Something the credential owns itself, so that the revocation has
	// to reach the database to hand it over.
	if _, err := tenant.Exec(ctx, "SET ROLE NONE; CREATE TABLE mine (x int); RESET ROLE"); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+
		" SET idle_session_timeout = '20ms'"); err != nil {
		t.Fatalf("the tenant sets idle_session_timeout: %v", err)
	}
	t.Cleanup(func() {
		mustExec(t, f.db.ServerURL, "ALTER DATABASE "+pgx.Identifier{f.db.Name}.Sanitize()+" RESET idle_session_timeout")
	})
	front := slowFront(t, f.db.Host+":"+f.db.Port, 50*time.Millisecond)
	viaFront := func(raw string) string {
		u := mustParse(t, raw)
		u.Host = front
		return u.String()
	}
	if answers(ctx, viaFront(f.db.URL)) {
		t.Fatal("a session of the tenant's database that does not override idle_session_timeout lasted past the login")
	}
	if !answers(ctx, viaFront(f.db.URL)+"&idle_session_timeout=0") {
		t.Fatal("the tenant's apps cannot connect even with idle_session_timeout sent 0")
	}
	iss := adminIssuer(t, f, viaFront(f.db.ServerURL))
	if err := iss.Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if got := roleCount(t, f.db.ServerURL, old.ID); got != 0 {
		t.Fatal("the old role is still there")
	}
	var owner string
	// Read as the tenant's apps connect: the database's default still ends
	// a session idle for 20 ms, which a loaded machine's test can be.
	if err := connect(t, f.db.URL+"&idle_session_timeout=0").QueryRow(ctx,
		"SELECT tableowner::text FROM pg_tables WHERE tablename = 'mine'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != f.loc.Owner {
		t.Fatalf("the credential's table belongs to %s, want the owner role %s", owner, f.loc.Owner)
	}
}
