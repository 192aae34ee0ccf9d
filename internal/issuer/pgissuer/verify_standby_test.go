package pgissuer_test

import (
	"context"
	"errors"
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
	servers, err := pgissuer.ParseServers([]byte(`{"main":{"admin_url":"` + adminURL + `","app_url":"` + appURL + `"}}`))
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
