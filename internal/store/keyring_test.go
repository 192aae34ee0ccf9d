package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/store"
)

// Each process's announcement names its keys in order, lapses at its time
// unless renewed (and is then deleted by the next read), and goes at once
// when withdrawn.
func TestKeyrings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := store.WithClock(func() time.Time { return now })
	oldKeys := store.New(r.Client, sealer(t, 1), clock)
	newKeys := store.New(r.Client, sealer(t, 2, 1), clock)
	ids := sealer(t, 2, 1).KeyIDs()

	if err := oldKeys.AnnounceKeyring(ctx, "worker.1", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := newKeys.AnnounceKeyring(ctx, "web.1", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := newKeys.AnnounceKeyring(ctx, "worker.2", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	rings, err := newKeys.Keyrings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rings) != 3 || rings[0].Process != "web.1" || !slices.Equal(rings[0].KeyIDs, ids) ||
		rings[1].Process != "worker.1" || rings[1].Seals() != ids[1] || len(rings[1].KeyIDs) != 1 ||
		!rings[2].Until.Equal(now.Add(3*time.Minute)) {
		t.Fatalf("keyrings = %+v, want web.1 and worker.2 with %v, worker.1 with %s alone", rings, ids, ids[1])
	}

	// Two minutes later worker.1 and web.1 have not renewed theirs.
	now = now.Add(2*time.Minute + time.Millisecond)
	if err := newKeys.WithdrawKeyring(ctx, "worker.2"); err != nil {
		t.Fatal(err)
	}
	rings, err = oldKeys.Keyrings(ctx)
	if err != nil || len(rings) != 0 {
		t.Fatalf("keyrings = %+v (%v), want none: two lapsed, one withdrawn", rings, err)
	}
	if n := r.Client.HLen(ctx, "rekey:keyrings").Val(); n != 0 {
		t.Errorf("%d lapsed announcements left in Redis", n)
	}
}
