package pgissuer_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

// lagging is a fixture on a private primary whose streaming standby has
// stopped replaying (as under replication lag), with both servers.
func lagging(t *testing.T) (f *fixture, primary, standby *pgtest.DB) {
	t.Helper()
	primary, standby = pgtest.WithStandby(t)
	pgtest.PauseReplay(t, standby)
	return fixtureOn(t, primary), primary, standby
}

// An admin URL that reaches a hot standby, lagging behind its primary,
// finds none of the roles minted since: a revocation there must not read
// "no such role" as "revoked" while the primary still lets the credential
// log in (docs/design.md I3), nor may a mint, a verify or a usage check
// answer from it. Each fails transiently, naming the cure; a URL listing
// the standby before the primary reaches the primary.
func TestAnAdminURLReachingAStandbyNeverAnswersForThePrimary(t *testing.T) {
	f, primary, standby := lagging(t)
	ctx := context.Background()
	old, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	onStandby := f.issuerAt(t, standby.ServerURL)
	password, _ := mustParse(t, standby.ServerURL).User.Password()
	for _, tc := range []struct {
		op   string
		call func() error
	}{
		{"revoke", func() error { return onStandby.Revoke(ctx, "inst-1", old.ID) }},
		{"mint", func() error { _, err := onStandby.Mint(ctx, "inst-1", "rot-2"); return err }},
		{"verify", func() error { return onStandby.Verify(ctx, "inst-1", old.ID) }},
		{"usage", func() error { _, err := onStandby.Usage(ctx, "inst-1", old.ID); return err }},
	} {
		t.Run(tc.op, func(t *testing.T) {
			err := tc.call()
			var ie *issuer.Error
			if !issuer.IsTransient(err) || !errors.As(err, &ie) || ie.Code != pgissuer.CodeInRecovery {
				t.Fatalf("%s on the standby = %v, want a transient %s", tc.op, err, pgissuer.CodeInRecovery)
			}
			if msg := err.Error(); !strings.Contains(msg, "primary") || !strings.Contains(msg, "admin_url") ||
				strings.Contains(msg, password) {
				t.Fatalf("%s on the standby says %q: it must name the cure, and never the admin password", tc.op, msg)
			}
		})
	}
	if !logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("the old credential no longer logs in to the primary")
	}

	both := mustParse(t, standby.ServerURL)
	both.Host = standby.Host + ":" + standby.Port + "," + primary.Host + ":" + primary.Port
	if err := f.issuerAt(t, both.String()).Revoke(ctx, "inst-1", old.ID); err != nil {
		t.Fatalf("revoke through a URL listing the standby, then the primary: %v", err)
	}
	if roleCount(t, primary.ServerURL, old.ID) != 0 || logsIn(ctx, old.Config["DATABASE_URL"].Reveal()) {
		t.Fatal("the revocation through both servers left the role on the primary")
	}
}

// issuerAt is an issuer of f's key and locations whose server "main" is
// reached with adminURL.
func (f *fixture) issuerAt(t testing.TB, adminURL string) *pgissuer.Issuer {
	t.Helper()
	return f.issuerOf(t, `{"main":"`+adminURL+`"}`)
}

// issuerOf is an issuer on the fixture's locations and key, with the
// servers of REKEY_POSTGRES_SERVERS's JSON servers.
func (f *fixture) issuerOf(t testing.TB, serversJSON string) *pgissuer.Issuer {
	t.Helper()
	servers, err := pgissuer.ParseServers([]byte(serversJSON))
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

func mustParse(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
