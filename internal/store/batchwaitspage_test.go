package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// replySizes is a go-redis hook that keeps the longest reply of each
// command name: how many entries one command made Redis walk.
type replySizes struct {
	mu   sync.Mutex
	most map[string]int
}

func (h *replySizes) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *replySizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.note(cmd)
		return err
	}
}
func (h *replySizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.note(c)
		}
		return err
	}
}

func (h *replySizes) note(cmd redis.Cmder) {
	n := 1
	switch c := cmd.(type) {
	case *redis.StringSliceCmd:
		n = len(c.Val())
	case *redis.ScanCmd:
		keys, _ := c.Val()
		n = len(keys)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	name := strings.ToLower(cmd.Name())
	h.most[name] = max(h.most[name], n)
}

// A batch that joined rotations past their joined_by cap notes them in its
// waits set, up to one per instance of a fleet wave. Reading the batch (the
// API's GET /api/v1/batches/{id}, `rekey batches show --wait`, polled) must
// not have Redis walk that whole set in one command, which blocks every
// worker and the web process while it runs: it is read a page at a time.
func TestReadingABatchReadsItsWaitsSetInPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if err := f.st.CreateBatch(ctx, "bat-big", "wave", 5000); err != nil {
		t.Fatal(err)
	}
	const waits, inFlight = 5000, 1234
	rdb := f.r.Client
	pipe := rdb.Pipeline()
	for i := range waits {
		rot := fmt.Sprintf("rot_%024d", i)
		pipe.SAdd(ctx, "rekey:batch:bat-big:waits", rot)
		state := "promoted"
		if i < inFlight {
			state = "pushing"
		}
		pipe.HSet(ctx, "rekey:rotation:"+rot, "state", state)
	}
	pipe.HSet(ctx, "rekey:batch:bat-big", "joined", waits, "joined_untracked", waits)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	h := &replySizes{most: map[string]int{}}
	rdb.AddHook(h)
	b, err := f.st.Batch(ctx, "bat-big")
	if err != nil {
		t.Fatal(err)
	}
	if b.InFlight != inFlight || b.Done {
		t.Errorf("batch: in_flight %d, done %v; want %d, not done", b.InFlight, b.Done, inFlight)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, n := range h.most {
		if n > 1000 {
			t.Errorf("%s answered %d entries in one command; want at most 1000 (commands: %v)", name, n, h.most)
		}
	}
}
