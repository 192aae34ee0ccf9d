package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

func batchIDs(bs []store.Batch) []string {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	return ids
}

// Batches lists newest first, pages by the last batch listed without
// losing or repeating the batches created in the same millisecond, lists
// only the batches not done with Running, and forgets a batch once its
// hash is past the rotation ttl.
func TestBatchesListNewestFirstAndPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	start := f.now
	f.register(t, "inst-1", "cred-0")
	// 450 batches: more than two of the store's pages, three in each
	// millisecond, so that page boundaries fall inside a millisecond.
	var want []string
	for i := range 450 {
		f.now = start.Add(time.Duration(i/3) * time.Millisecond)
		id := fmt.Sprintf("bat_%03d", i)
		if err := f.st.CreateBatch(ctx, id, "wave", 1); err != nil {
			t.Fatal(err)
		}
		if err := f.st.CountBatch(ctx, id, 0, 0, 1); err != nil { // skipped: done
			t.Fatal(err)
		}
		want = append(want, id)
	}
	// One running batch among them, near the oldest end.
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1", BatchID: "bat_run"}); err != nil {
		t.Fatal(err)
	}
	f.now = start.Add(-time.Second)
	if err := f.st.CreateBatch(ctx, "bat_run", "one", 1); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CountBatch(ctx, "bat_run", 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	// One created by a process whose clock runs an hour ahead is listed
	// too, first.
	f.now = start.Add(time.Hour)
	if err := f.st.CreateBatch(ctx, "bat_ahead", "ahead", 1); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CountBatch(ctx, "bat_ahead", 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	f.now = start.Add(time.Minute)
	want = append([]string{"bat_run"}, want...)
	want = append(want, "bat_ahead")
	slices.Reverse(want)

	var got []string
	before := ""
	for range 100 {
		page, err := f.st.Batches(ctx, store.BatchQuery{Limit: 7, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, batchIDs(page)...)
		if len(page) < 7 {
			break
		}
		before = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged list of %d batches differs from the %d created newest first:\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	// Lists read in the store's own pages while another process, its
	// clock behind, creates batches among those not read yet, repeat none.
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	behind := store.New(f.r.Client, sealer, store.WithClock(func() time.Time { return start.Add(50 * time.Millisecond) }))
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := behind.CreateBatch(ctx, fmt.Sprintf("bat_behind_%04d", i), "behind", 1); err != nil {
				done <- err
				return
			}
		}
	}()
	for range 20 {
		all, err := f.st.Batches(ctx, store.BatchQuery{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, b := range all {
			if seen[b.ID] {
				t.Fatalf("batch %s listed twice in one list of %d", b.ID, len(all))
			}
			seen[b.ID] = true
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := f.r.Client.Del(ctx, f.r.Client.Keys(ctx, "rekey:batch:bat_behind_*").Val()...).Err(); err != nil {
		t.Fatal(err)
	}

	running, err := f.st.Batches(ctx, store.BatchQuery{Limit: 20, Running: true})
	if err != nil {
		t.Fatal(err)
	}
	if ids := batchIDs(running); !slices.Equal(ids, []string{"bat_run"}) || running[0].InFlight != 1 || running[0].Reason != "one" {
		t.Errorf("running batches = %v (%+v), want only bat_run with 1 in flight", ids, running)
	}

	if _, err := f.st.Batches(ctx, store.BatchQuery{Limit: 5, Before: "bat_nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("before an unknown batch: err = %v, want ErrNotFound", err)
	}

	// A batch whose hash expired (deleted here, as its ttl would) is not
	// listed; a month on, a new batch trims the list to itself.
	if err := f.r.Client.Del(ctx, "rekey:batch:bat_ahead").Err(); err != nil {
		t.Fatal(err)
	}
	newest, err := f.st.Batches(ctx, store.BatchQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ids := batchIDs(newest); !slices.Equal(ids, []string{"bat_449"}) {
		t.Errorf("newest batch with bat_ahead's hash gone = %v, want [bat_449]", ids)
	}
	f.now = start.Add(31 * 24 * time.Hour)
	if err := f.st.CreateBatch(ctx, "bat_new", "later", 2); err != nil {
		t.Fatal(err)
	}
	if ids := f.r.Client.ZRange(ctx, "rekey:batches", 0, -1).Val(); !slices.Equal(ids, []string{"bat_new"}) {
		t.Errorf("the list holds %v after a month, want [bat_new]", ids)
	}
}
