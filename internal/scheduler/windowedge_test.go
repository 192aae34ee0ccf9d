package scheduler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// An instance whose slot in the maintenance window falls after the
// window's last sweep (the last interval of the window) was deferred to
// the same slot the next day, and the day after, for ever: the sweep
// before the slot found it not yet due, the one after found the window
// closed. It must rotate within a few openings.
func TestInstanceSlottedAtTheWindowsEndStillRotates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	noon := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	win := store.Window{Start: 2, End: 3}
	id := ""
	for i := 0; id == ""; i++ {
		if c := fmt.Sprintf("edge-%d", i); store.Slot(c, win.Length()) > win.Length()-30*time.Second {
			id = c
		}
	}
	w := newWorld(t, noon)
	p := simParams()
	p.Window = &win
	s := w.scheduler(t, p)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.register(t, id)
	w.advance(simPeriod) // due, outside the window
	if res, err := s.Sweep(ctx, w.now()); err != nil || res.Deferred != 1 {
		t.Fatalf("sweep at noon = %+v, %v; want the instance deferred", res, err)
	}
	// Sweeps every minute, at half past, through three openings.
	for day := 1; day <= 3; day++ {
		open := time.Date(2026, 1, 5+day, 2, 0, 30, 0, time.UTC)
		for m := -2; m <= 62; m++ {
			now := open.Add(time.Duration(m) * time.Minute)
			w.set(now)
			if _, err := s.Sweep(ctx, now); err != nil {
				t.Fatal(err)
			}
			if w.queue.count() > 0 {
				if !win.Contains(now) {
					t.Fatalf("enqueued at %s, outside the window %s", now, win)
				}
				return
			}
		}
	}
	in, _ := w.st.Instance(ctx, id)
	t.Fatalf("%s (slot %s into the window) never rotated in three openings; next rotation %s",
		id, store.Slot(id, win.Length()), in.NextRotationAt)
}
