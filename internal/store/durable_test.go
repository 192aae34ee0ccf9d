package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// A REDIS_URL may shorten go-redis's read timeout (?read_timeout=500ms),
// which a pipeline applies to WAIT too: a wait longer than it is cut off
// as an i/o timeout, the connection dropped, and the pipeline sent again.
// Durable then neither vouches for the writes nor says they are not
// durable (store.ErrNotDurable): it waits within the client's read timeout.
func TestDurableWaitsWithinTheClientsReadTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary, replica := redistest.StartReplicated(t)
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr, ReadTimeout: 400 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb, sealer, store.WithDurability(1))
	// A replica answers within milliseconds, but a machine busy with other
	// tests may hold its answer past the 200 ms this wait has: a few tries.
	for try := 1; ; try++ {
		err := st.Durable(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrNotDurable) || try == 10 {
			t.Fatalf("Durable with the replica attached, try %d: %v", try, err)
		}
	}
	if err := replica.Client.Do(ctx, "replicaof", "no", "one").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if info, _ := primary.Client.Info(ctx, "replication").Result(); strings.Contains(info, "connected_slaves:0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the primary still counts its replica")
		}
	}
	start := time.Now()
	err = st.Durable(ctx)
	if !errors.Is(err, store.ErrNotDurable) {
		t.Errorf("Durable without the replica, read timeout 400ms = %v after %s, want store.ErrNotDurable", err, time.Since(start))
	}
}
