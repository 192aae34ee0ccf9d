package pacing_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// zremSizes keeps how many members the largest ZREM named: how many
// entries one command made Redis remove.
type zremSizes struct {
	mu   sync.Mutex
	most int
}

func (h *zremSizes) note(cmd redis.Cmder) {
	if cmd.Name() != "zrem" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.most = max(h.most, len(cmd.Args())-2) // ZREM key member...
}

// Cancelling a fleet wave unholds every rotation it still holds, up to one
// per instance: no single ZREM may name them all, which would hold Redis,
// and every worker and the web process waiting on it, for the whole wave
// (a quarter of a second at 100,000 ids).
func TestUnholdingAWaveRemovesItsIDsInPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	const n = 5000
	ids := make([]string, n)
	pipe := r.Client.Pipeline()
	for i := range ids {
		ids[i] = fmt.Sprintf("rot_%024d", i)
		pipe.ZAdd(ctx, "rekey:pace:held", redis.Z{Score: float64(i), Member: ids[i]})
	}
	pipe.ZAdd(ctx, "rekey:pace:held", redis.Z{Score: n, Member: "rot_another_wave"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	h := &zremSizes{}
	r.Client.AddHook(redistest.OnCommand{Note: h.note})
	if err := pacing.Unhold(ctx, r.Client, ids...); err != nil {
		t.Fatal(err)
	}
	left, err := r.Client.ZRange(ctx, "rekey:pace:held", 0, -1).Result()
	if err != nil || len(left) != 1 || left[0] != "rot_another_wave" {
		t.Fatalf("held after unholding the wave: %d ids (%.3v), %v; want only rot_another_wave", len(left), left, err)
	}
	if h.most > 500 {
		t.Errorf("one ZREM named %d ids; want at most 500 a command", h.most)
	}
}
