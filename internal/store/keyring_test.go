package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/store"
)

// Each process's announcement names its keys in order and lapses at its
// time by Redis's clock, whatever the reader's clock says; a lapsed one is
// dropped by the next announcement, and a withdrawn one goes at once.
func TestKeyrings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	oldKeys := store.New(r.Client, sealer(t, 1))
	newKeys := store.New(r.Client, sealer(t, 2, 1))
	// An operator's machine whose clock is an hour fast.
	skewed := store.New(r.Client, sealer(t, 2, 1), store.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	ids := sealer(t, 2, 1).KeyIDs()

	if err := oldKeys.AnnounceKeyring(ctx, "worker.1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := newKeys.AnnounceKeyring(ctx, "web.1", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	rings, err := skewed.Keyrings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rings) != 2 || rings[0].Process != "web.1" || !slices.Equal(rings[0].KeyIDs, ids) ||
		rings[1].Process != "worker.1" || rings[1].Seals() != ids[1] || len(rings[1].KeyIDs) != 1 {
		t.Fatalf("keyrings = %+v, want web.1 with %v and worker.1 with %s alone", rings, ids, ids[1])
	}

	time.Sleep(600 * time.Millisecond) // web.1 lapses
	if rings, err = newKeys.Keyrings(ctx); err != nil || len(rings) != 1 || rings[0].Process != "worker.1" {
		t.Fatalf("keyrings = %+v (%v), want worker.1 alone once web.1 lapsed", rings, err)
	}
	if n := r.Client.HLen(ctx, "rekey:keyrings").Val(); n != 2 {
		t.Errorf("%d announcements in Redis, want 2: reading drops nothing", n)
	}
	if err := newKeys.AnnounceKeyring(ctx, "worker.2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if fields := r.Client.HKeys(ctx, "rekey:keyrings").Val(); len(fields) != 2 || slices.Contains(fields, "web.1") {
		t.Errorf("announcements in Redis %v, want web.1's dropped by worker.2's", fields)
	}
	if err := oldKeys.WithdrawKeyring(ctx, "worker.1"); err != nil {
		t.Fatal(err)
	}
	if rings, err = oldKeys.Keyrings(ctx); err != nil || len(rings) != 1 || rings[0].Process != "worker.2" {
		t.Fatalf("keyrings = %+v (%v), want worker.2 alone once worker.1 withdrew", rings, err)
	}
}
