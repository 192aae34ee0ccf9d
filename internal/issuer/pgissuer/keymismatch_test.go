package pgissuer_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
)

// Two workers derive role names under different keys (REKEY_POSTGRES_KEY
// set on one only, or REKEY_ENCRYPTION_KEYS listed in another order): the
// one asked to revoke the other's role leaves it alone, and its error names
// the keys as the cause rather than calling the role a stranger's. Once the
// keys agree the revocation goes through.
func TestRevokeUnderAnotherKeySaysTheKeysDiffer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, err := f.iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.iss.Revoke(ctx, "inst-1", c.ID) })
	servers, err := pgissuer.ParseServers([]byte(`{"main":"` + f.db.ServerURL + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	other, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)

	err = other.Revoke(ctx, "inst-1", c.ID)
	var ie *issuer.Error
	if !issuer.IsPermanent(err) || !errors.As(err, &ie) || ie.Code != pgissuer.CodeKeyMismatch {
		t.Fatalf("revoke under another key = %v, want a permanent %s", err, pgissuer.CodeKeyMismatch)
	}
	for _, want := range []string{c.ID, "REKEY_POSTGRES_KEY", "REKEY_ENCRYPTION_KEYS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "not minted by rekey") {
		t.Errorf("the error calls rekey's own role a stranger's: %v", err)
	}
	u, _ := url.Parse(c.Config["DATABASE_URL"].Reveal())
	if !logsIn(ctx, u.String()) {
		t.Fatal("the role was touched by the worker with another key")
	}
	if err := f.iss.Revoke(ctx, "inst-1", c.ID); err != nil {
		t.Fatalf("revoke under the minting key: %v", err)
	}
	if logsIn(ctx, u.String()) {
		t.Fatal("the credential still logs in after its revocation")
	}
}
