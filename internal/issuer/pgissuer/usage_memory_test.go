package pgissuer_test

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
)

// A worker dyno that saw a role in use remembers it until it revokes the
// role itself; a role another dyno revoked, or whose revocation went dead,
// is never revoked here. Over a day of waves that memory must not keep
// every such role: past its horizon a role reads as never used, as it does
// after a restart, and is forgotten.
func TestUsageForgetsRolesRevokedByAnotherProcess(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	servers, err := pgissuer.ParseServers([]byte(`{"main":"` + f.db.ServerURL + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	here, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: key, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(here.Close)
	other, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: f.locs, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)

	const roles = 40
	for i := range roles {
		c, err := here.Mint(ctx, "inst-1", "rot-"+string(rune('a'+i/26))+string(rune('a'+i%26)))
		if err != nil {
			t.Fatal(err)
		}
		conn := connect(t, c.Config["DATABASE_URL"].Reveal())
		if u, err := here.Usage(ctx, "inst-1", c.ID); err != nil || u.LastUsedAt.IsZero() {
			t.Fatalf("usage with a live session = %+v, %v; want now", u, err)
		}
		conn.Close(ctx)
		if err := other.Revoke(ctx, "inst-1", c.ID); err != nil {
			t.Fatalf("revoke on the other process: %v", err)
		}
		mu.Lock()
		now = now.Add(2 * time.Hour)
		mu.Unlock()
	}
	if n := here.UsageRemembered(); n > 2 {
		t.Fatalf("after %d roles seen in use and revoked elsewhere, two hours apart, Usage remembers %d; want at most 2", roles, n)
	}
}
