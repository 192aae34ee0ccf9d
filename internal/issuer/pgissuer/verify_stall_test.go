package pgissuer_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

// stallingFront relays connections to the PostgreSQL at backend until the
// server says it is ready for a query, and then answers nothing more: a
// pooler whose server pool is exhausted, or a proxy that hangs, after it
// let the login in. It returns the front's host:port.
func stallingFront(t *testing.T, backend string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = ln.Close() })
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
				go func() { _, _ = io.Copy(b, c) }()
				// The startup's answer is a single byte ('N': no TLS, as
				// sslmode=disable asks none); then typed messages.
				for {
					var head [5]byte
					if _, err := io.ReadFull(b, head[:]); err != nil {
						return
					}
					body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
					if _, err := io.ReadFull(b, body); err != nil {
						return
					}
					if _, err := c.Write(append(head[:], body...)); err != nil {
						return
					}
					if head[0] == 'Z' { // ReadyForQuery: logged in; hang from here
						<-done
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A verify's server that lets a login in and then never answers its query
// (a pooler with no server connection to give, a hung proxy) holds the
// verify no longer than the issuer's timeout, as one that never answers
// the connection does: the verify fails transiently (timeout). It held a
// worker until the task's own deadline, minutes, whether the stalled
// query was the role's login check or, after the app URL's server refused
// the role and the primary took it, the lag check's question to that
// server as admin_url's role.
func TestAVerifyWhoseServerStallsAfterTheLoginEndsAtTheIssuersTimeout(t *testing.T) {
	f := newFixture(t)
	const timeout = 2 * time.Second
	issuerWithApp := func(t *testing.T, appHostPort string) *pgissuer.Issuer {
		servers, err := pgissuer.ParseServers([]byte(`{"main":{"admin_url":"` + f.db.ServerURL +
			`","app_url":"postgres://` + appHostPort + `/?sslmode=disable"}}`))
		if err != nil {
			t.Fatal(err)
		}
		iss, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: f.key, ConnectTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(iss.Close)
		return iss
	}
	// Another cluster that lets admin_url's role in (its database of the
	// fixture's name too) and has none of the roles minted: the role's
	// login over it is refused, and the lag check asks it as admin_url's role.
	other := pgtest.Another(t)
	admin := mustParse(t, f.db.ServerURL)
	adminPassword, _ := admin.User.Password()
	role := pgx.Identifier{admin.User.Username()}.Sanitize()
	mustExec(t, other.ServerURL, "CREATE DATABASE "+pgx.Identifier{f.db.Name}.Sanitize())
	if pgtest.Exec(context.Background(), other.ServerURL, "ALTER ROLE "+role+" PASSWORD "+sqlString(adminPassword)) != nil {
		mustExec(t, other.ServerURL, "CREATE ROLE "+role+" LOGIN SUPERUSER PASSWORD "+sqlString(adminPassword))
	}

	for _, tc := range []struct{ name, rotation, backend string }{
		{"the role's login check", "rot-1", f.db.Host + ":" + f.db.Port},
		{"the lag check", "rot-2", other.Host + ":" + other.Port},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := issuerWithApp(t, stallingFront(t, tc.backend))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cred, err := iss.Mint(ctx, "inst-1", tc.rotation)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = iss.Verify(ctx, "inst-1", cred.ID)
			if took := time.Since(start); took > 4*timeout {
				t.Errorf("verify over a server that stalls after the login took %s, want about the issuer's timeout (%s)", took.Round(time.Second), timeout)
			}
			if !issuer.IsTransient(err) {
				t.Errorf("verify over a server that stalls after the login = %v, want a transient failure", err)
			}
		})
	}
}
