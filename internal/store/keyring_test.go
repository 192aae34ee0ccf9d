package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
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

// Before any worker made the fingerprint key, a process that would seal
// under a key the fleet does not hold is refused by what the fleet left:
// values sealed only under its later keys (an operator who put a new key
// first before the fleet had it), even with itself announcing its keys,
// or a running process without it. It makes no fingerprint key
// then, which would stop every worker of the fleet; a process whose first
// key opens what is stored makes it, and the fleet's workers open it.
func TestTheFleetsKeysBeforeTheFingerprintKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	fleet := store.New(r.Client, sealer(t, 1))
	if err := fleet.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	if err := fleet.SaveToken(ctx, "inst-1", heroku.Token{AccessToken: secret.New("access-1"), RefreshToken: secret.New("refresh-1")}); err != nil {
		t.Fatal(err)
	}
	hasKey := func() bool { return r.Client.Exists(ctx, "rekey:fingerprint_key").Val() == 1 }

	operator := store.New(r.Client, sealer(t, 2, 1))
	if err := operator.CheckSealedByTheFleet(ctx); !errors.Is(err, store.ErrNotTheFleetsKeys) || hasKey() {
		t.Fatalf("a new key put first, the fleet's second: %v (fingerprint key made: %v); want ErrNotTheFleetsKeys and none made",
			err, hasKey())
	}
	// A web process announces its own keys before it registers: they
	// vouch for nothing.
	if err := operator.AnnounceKeyring(ctx, "web.1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := operator.CheckSealedByTheFleet(ctx); !errors.Is(err, store.ErrNotTheFleetsKeys) || hasKey() {
		t.Fatalf("the same, announcing itself: %v (fingerprint key made: %v); want ErrNotTheFleetsKeys and none made",
			err, hasKey())
	}
	if err := operator.WithdrawKeyring(ctx, "web.1"); err != nil {
		t.Fatal(err)
	}
	if err := store.New(r.Client, sealer(t, 3)).AnnounceKeyring(ctx, "worker.9", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := fleet.CheckSealedByTheFleet(ctx); !errors.Is(err, store.ErrNotTheFleetsKeys) || hasKey() {
		t.Fatalf("a running process without the sealing key: %v; want ErrNotTheFleetsKeys and no fingerprint key", err)
	}
	if err := fleet.WithdrawKeyring(ctx, "worker.9"); err != nil {
		t.Fatal(err)
	}

	if err := store.New(r.Client, sealer(t, 1, 2)).CheckSealedByTheFleet(ctx); err != nil || !hasKey() {
		t.Fatalf("the fleet's key first: %v (fingerprint key made: %v); want it passed and made", err, hasKey())
	}
	if err := fleet.CheckFingerprintKey(ctx); err != nil {
		t.Errorf("a worker of the fleet after the check: %v", err)
	}
}

// Before the fingerprint key exists, a sample in which more stored values
// open with none of a process's keys than with them refuses it: a process
// left with a retired key, which opens one straggler, would otherwise make
// the key the fleet cannot open. One straggler under a retired key does
// not refuse the fleet's own, nor one in the middle of a key change, its
// values under its first key and its second. Once the
// key exists, one that opens but holds no keys refuses as the worker's
// every mint would.
func TestTheFleetsKeysOutnumberAStraggler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	save := func(st *store.Store, id string) {
		t.Helper()
		if err := st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
			ConfigVars: []string{"MYADDON_URL"}}); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveToken(ctx, id, heroku.Token{AccessToken: secret.New("access-" + id),
			RefreshToken: secret.New("refresh-" + id)}); err != nil {
			t.Fatal(err)
		}
	}
	fleet, retired := store.New(r.Client, sealer(t, 1)), store.New(r.Client, sealer(t, 2))
	for i := range 5 {
		save(fleet, fmt.Sprintf("inst-%d", i))
	}
	save(retired, "straggler")
	hasKey := func() bool { return r.Client.Exists(ctx, "rekey:fingerprint_key").Val() == 1 }
	if err := retired.CheckSealedByTheFleet(ctx); !errors.Is(err, store.ErrNotTheFleetsKeys) || hasKey() ||
		!strings.Contains(err.Error(), "5 open with none of its keys and 1 with them") {
		t.Fatalf("the retired key alone: %v (fingerprint key made: %v); want ErrNotTheFleetsKeys counting both and none made",
			err, hasKey())
	}
	// Mid key change: a new key first, one value under it, the fleet's
	// five under the second, the straggler under neither.
	changing := store.New(r.Client, sealer(t, 3, 1))
	save(changing, "new-1")
	if err := store.New(r.Client, sealer(t, 3, 1)).CheckSealedByTheFleet(ctx); err != nil || !hasKey() {
		t.Fatalf("mid key change, a straggler under another: %v (fingerprint key made: %v); want it passed and made",
			err, hasKey())
	}
	r.Client.Del(ctx, "rekey:fingerprint_key")
	if err := fleet.CheckSealedByTheFleet(ctx); err != nil || !hasKey() {
		t.Fatalf("the fleet's key, a straggler under another: %v (fingerprint key made: %v); want it passed and made", err, hasKey())
	}

	hollow, err := sealer(t, 1).SealBinary(secret.New("short"), "rekey:fingerprint_key#")
	if err != nil {
		t.Fatal(err)
	}
	r.Client.Set(ctx, "rekey:fingerprint_key", hollow, 0)
	if err := store.New(r.Client, sealer(t, 1)).CheckSealedByTheFleet(ctx); !errors.Is(err, store.ErrFingerprintKey) {
		t.Errorf("a fingerprint key that opens but holds no key: %v, want ErrFingerprintKey", err)
	}
}
