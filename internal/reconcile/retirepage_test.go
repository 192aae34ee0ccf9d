package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// Deprovisioned instances wait to expire until no credential of theirs is
// due for revocation, which for a discarded one only the fleet-wide
// revoke-due index says. A sweep used to scan that index whole once for
// each retiring instance: after a fleet wave (one due entry per instance,
// 100,000) with a few hundred add-ons deprovisioned, that was millions of
// commands a sweep. A page of retiring instances now costs one scan of it,
// and an instance with a credential due still waits.
func TestRetiringInstancesScanTheRevokeDueIndexOnceAPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	const others, retiring = 3000, 600 // more than a page of the sweep's
	due := make([]redis.Z, others)
	for i := range due {
		due[i] = redis.Z{Score: float64(w.now.UnixMilli()), Member: fmt.Sprintf("busy-%d/cred-1", i)}
	}
	if err := w.r.Client.ZAdd(ctx, "rekey:revoke_due", due...).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range retiring {
		id := fmt.Sprintf("gone-%d", i)
		w.register(t, id)
		if err := w.st.Deprovision(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// One more whose discarded credential is still due.
	w.register(t, "gone-waiting")
	if err := w.st.Deprovision(ctx, "gone-waiting"); err != nil {
		t.Fatal(err)
	}
	if err := w.r.Client.ZAdd(ctx, "rekey:revoke_due", redis.Z{Score: float64(w.now.UnixMilli()), Member: "gone-waiting/cred-d"}).Err(); err != nil {
		t.Fatal(err)
	}

	var zscans, scans atomic.Int64
	w.r.Client.AddHook(redistest.OnCommand{Note: func(cmd redis.Cmder) {
		if !strings.EqualFold(cmd.Name(), "zscan") {
			return
		}
		zscans.Add(1)
		if a := cmd.Args(); len(a) > 2 && a[1] == "rekey:revoke_due" && fmt.Sprint(a[2]) == "0" {
			scans.Add(1) // a scan of the index starts
		}
	}})
	res, err := w.sweep.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.InstancesExpiring != retiring {
		t.Errorf("%d instances expiring, want %d", res.InstancesExpiring, retiring)
	}
	if d, err := w.st.InstanceExpiry(ctx, "gone-waiting"); err != nil || d != 0 {
		t.Errorf("the instance with a credential due expires in %s (%v), want no expiry", d, err)
	}
	// 3,001 due entries read 1,000 at a time, and the empty dead-letter set:
	// a handful of commands, where once an instance it was thousands.
	if n, s := zscans.Load(), scans.Load(); s != 1 || n > 10 {
		t.Errorf("the sweep scanned the revoke-due index %d times, in %d ZSCANs, for %d retiring instances "+
			"and %d due entries; want it scanned once", s, n, retiring+1, others+1)
	}
}
