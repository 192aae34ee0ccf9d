package pgissuer_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

// A verify logs in over the app URL, which may list a read replica (alone,
// or before the primary): one that has not replayed a freshly minted role
// yet refuses it, and pgx, as libpq, tries no further host after a refused
// password. That is lag, not a credential that does not log in: the verify
// fails transiently (login_lagging), and passes once the standby has
// replayed the role. A credential the primary refuses too still fails for
// good (login_failed).
func TestAVerifyOverALaggingStandbyIsNotALoginFailure(t *testing.T) {
	f, primary, standby := lagging(t)
	ctx := context.Background()
	both := mustParse(t, standby.ServerURL)
	both.Host = standby.Host + ":" + standby.Port + "," + primary.Host + ":" + primary.Port
	for _, tc := range []struct {
		name, rotation, admin, app string
	}{
		{"the standby alone", "rot-1", primary.ServerURL, standby.Host + ":" + standby.Port},
		{"the standby, then the primary", "rot-2", primary.ServerURL, both.Host},
		// The role's login on the primary goes past the standby too.
		{"the standby, with an admin URL listing it first", "rot-3", both.String(), standby.Host + ":" + standby.Port},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := f.issuerWithApp(t, tc.admin, "postgres://"+tc.app+"/?sslmode=disable")
			cred, err := iss.Mint(ctx, "inst-1", tc.rotation)
			if err != nil {
				t.Fatal(err)
			}
			err = iss.Verify(ctx, "inst-1", cred.ID)
			var ie *issuer.Error
			if !issuer.IsTransient(err) || !errors.As(err, &ie) || ie.Code != pgissuer.CodeLoginLagging {
				t.Fatalf("verify over a standby that has not replayed the role = %v, want a transient %s", err, pgissuer.CodeLoginLagging)
			}
			mustExec(t, primary.ServerURL, "ALTER ROLE "+pgx.Identifier{cred.ID}.Sanitize()+" PASSWORD 'not-the-derived-one'")
			err = iss.Verify(ctx, "inst-1", cred.ID)
			if !issuer.IsPermanent(err) || !errors.As(err, &ie) || ie.Code != pgissuer.CodeLoginFailed {
				t.Fatalf("verify of a credential the primary refuses = %v, want a permanent %s", err, pgissuer.CodeLoginFailed)
			}
		})
	}

	iss := f.issuerWithApp(t, primary.ServerURL, "postgres://"+standby.Host+":"+standby.Port+"/?sslmode=disable")
	cred, err := iss.Mint(ctx, "inst-1", "rot-4")
	if err != nil {
		t.Fatal(err)
	}
	pgtest.CatchUp(t, primary, standby)
	if err := iss.Verify(ctx, "inst-1", cred.ID); err != nil {
		t.Fatalf("verify over the standby once it has replayed the role: %v", err)
	}
}

// issuerWithApp is an issuer of f's key and locations whose server "main"
// is administered through adminURL and reached by apps through appURL.
func (f *fixture) issuerWithApp(t testing.TB, adminURL, appURL string) *pgissuer.Issuer {
	t.Helper()
	return f.issuerOf(t, `{"main":{"admin_url":"`+adminURL+`","app_url":"`+appURL+`"}}`)
}

// An app URL's server that refuses a role the primary accepts is lag only
// when it is a standby of the primary's cluster that has not replayed the
// role yet. Another server (another cluster, or a pooler whose auth file
// lacks the role) will refuse the customer's app for ever: the verify
// fails for good at once (login_failed), saying so, rather than being
// retried for hours as login_lagging while the rotation stays in flight.
func TestAVerifyOverAServerOfAnotherClusterIsALoginFailure(t *testing.T) {
	f, primary, _ := lagging(t)
	ctx := context.Background()
	adminPassword, _ := mustParse(t, primary.ServerURL).User.Password()

	// Another cluster, which refuses admin_url's role too.
	strange := pgtest.Another(t)
	// Another cluster that lets admin_url's role in, not in recovery: as a
	// pooler passing the admin role through to the primary would.
	open := pgtest.Another(t)
	mustExec(t, open.ServerURL, "CREATE DATABASE "+pgx.Identifier{primary.Name}.Sanitize())
	mustExec(t, open.ServerURL, "ALTER ROLE rekey_admin PASSWORD "+sqlString(adminPassword))
	// A standby of another cluster, which lets admin_url's role in and has
	// not the role: in recovery, as a lagging standby of this cluster is.
	otherPrimary, otherStandby := pgtest.WithStandby(t)
	mustExec(t, otherPrimary.ServerURL, "CREATE DATABASE "+pgx.Identifier{primary.Name}.Sanitize())
	pgtest.CatchUp(t, otherPrimary, otherStandby)
	mustExec(t, otherPrimary.ServerURL, "ALTER ROLE rekey_admin PASSWORD "+sqlString(adminPassword))
	replayed := mustParse(t, otherStandby.URL)
	replayed.User = url.UserPassword("rekey_admin", adminPassword)
	waitFor(t, func() bool { return logsIn(ctx, replayed.String()) })

	for _, tc := range []struct {
		name, rotation string
		server         *pgtest.DB
		says           string
	}{
		{"a server refusing the admin role", "rot-1", strange, "refused admin_url's role"},
		{"a server not in recovery", "rot-2", open, "not in recovery"},
		{"a standby of another cluster", "rot-3", otherStandby, "another cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := f.issuerWithApp(t, primary.ServerURL, "postgres://"+tc.server.Host+":"+tc.server.Port+"/?sslmode=disable")
			cred, err := iss.Mint(ctx, "inst-1", tc.rotation)
			if err != nil {
				t.Fatal(err)
			}
			err = iss.Verify(ctx, "inst-1", cred.ID)
			var ie *issuer.Error
			if !issuer.IsPermanent(err) || !errors.As(err, &ie) || ie.Code != pgissuer.CodeLoginFailed {
				t.Fatalf("verify over %s = %v, want a permanent %s", tc.name, err, pgissuer.CodeLoginFailed)
			}
			if msg := err.Error(); !strings.Contains(msg, "not a standby of this cluster") || !strings.Contains(msg, tc.says) ||
				strings.Contains(msg, adminPassword) {
				t.Fatalf("verify over %s says %q: it must say the app URL's server is not a standby of this cluster (%s), and never the admin password", tc.name, msg, tc.says)
			}
		})
	}
}

// sqlString is s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
