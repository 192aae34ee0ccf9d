package bench_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// The Monitor counts a script's call and the commands it ran for the
// script, plain commands by name, and notes the first key a script worked
// on with its ids as "*".
func TestMonitorTellsWhereCommandsWent(t *testing.T) {
	ctx := context.Background()
	rd := redistest.New(t)
	mon, err := bench.StartMonitor(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	script := redis.NewScript(`redis.call('SET', KEYS[1], 'a'); redis.call('GET', KEYS[1]); return redis.call('DEL', KEYS[1])`)
	if err := script.Load(ctx, rd.Client).Err(); err != nil {
		t.Fatal(err)
	}
	before, err := mon.Tally()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"rekey:thing:a0de0000-0000-4000-8000-000000000013", "rekey:thing:rot_1d96281450b3f05ea36b351d"} {
		if err := script.EvalSha(ctx, rd.Client, []string{key}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rd.Client.HSet(ctx, "last", "f", "1").Err(); err != nil {
		t.Fatal(err)
	}
	var by map[string]int64
	var now bench.Tally
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if now, err = mon.Tally(); err != nil {
			t.Fatal(err)
		}
		if by = now.BySource(before, nil); by["hset"] >= 1 {
			break
		}
	}
	if got := by["script "+script.Hash()]; got != 8 {
		t.Errorf("the script counted %d commands, want 8: two calls and the three commands each ran (%v)", got, by)
	}
	if by["hset"] != 1 || by["set"] != 0 {
		t.Errorf("plain commands %v: want the HSET alone, the script's SET counted for the script", by)
	}
	if got := now.Keys[script.Hash()]; got != "rekey:thing:*" {
		t.Errorf("the script's key reads %q, want rekey:thing:*", got)
	}

	// A script Redis does not hold yet: Script.Run's EVALSHA is refused
	// (NOSCRIPT) and its EVAL, whose body MONITOR shows escaped, runs it.
	// Redis keeps scripts across databases and runs: the body is this run's own.
	fresh := redis.NewScript(fmt.Sprintf("-- \"first\" run %d\n\tredis.call('INCR', KEYS[1])\nreturn redis.call('GET', KEYS[1])",
		time.Now().UnixNano()))
	before = now
	if err := fresh.Run(ctx, rd.Client, []string{"rekey:counter:a0de0000-0000-4000-8000-000000000014"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rd.Client.HSet(ctx, "last", "f", "2").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if now, err = mon.Tally(); err != nil {
			t.Fatal(err)
		}
		if by = now.BySource(before, nil); by["hset"] >= 1 {
			break
		}
	}
	if got := by["script "+fresh.Hash()]; got != 4 || by["eval"] != 0 {
		t.Errorf("the first run counted %d for its script and %d as a plain EVAL, want 4 and 0: the refused EVALSHA, "+
			"the EVAL and the two commands it ran (%v)", got, by["eval"], by)
	}
}
