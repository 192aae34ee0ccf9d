package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/bench"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// The Monitor counts a script's commands for the client that called it,
// apart from the call itself, and only on the database it follows.
func TestMonitorTellsScriptCommandsFromSentOnes(t *testing.T) {
	ctx := context.Background()
	rd, other := redistest.New(t), redistest.New(t)
	mon, err := bench.StartMonitor(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	before, err := mon.Tally()
	if err != nil {
		t.Fatal(err)
	}
	const script = `redis.call('SET', KEYS[1], 'a'); redis.call('GET', KEYS[1]); return redis.call('DEL', KEYS[1])`
	for _, c := range []string{"k1", "k2"} {
		if err := rd.Client.Eval(ctx, script, []string{c}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := other.Client.Eval(ctx, script, []string{c}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rd.Client.Set(ctx, "last", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var sent, ran int64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		now, err := mon.Tally()
		if err != nil {
			t.Fatal(err)
		}
		if sent, ran = now.Since(before, nil); sent >= 3 {
			break
		}
	}
	// The two EVALs and the SET (the client's HELLO and SELECT come before
	// the monitor's first tally, or are on its database too: at most those).
	if sent < 3 || sent > 6 || ran != 6 {
		t.Errorf("sent %d, ran by scripts %d; want 3 to 6 sent and 6 run by the two scripts on this database", sent, ran)
	}
}
