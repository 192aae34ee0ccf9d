package bench_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/bench"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/worker"
	"github.com/rekeyhq/rekey/tasks"
)

// The tests below run two `rekey worker` processes on a budget of 20 calls a
// second. They run one after another, not in parallel: each starts real
// processes, and on a small machine they would slow each other down.
const (
	testRate = 20 // calls per second
	// testBurst is the limiter's default burst at that rate: ten seconds of
	// budget, the interactive reserve included.
	testBurst = testRate * 10
)

// budgetEnv is the worker environment of the budget tests. The grace is
// long: no revocation runs while a test looks at Heroku calls.
func budgetEnv() map[string]string {
	return map[string]string{
		"REKEY_HEROKU_RATE":         strconv.Itoa(testRate * 3600),
		"REKEY_CONCURRENCY":         "10",
		"REKEY_GRACE":               "1h",
		"REKEY_PRIVATE_SPACE_GRACE": "1h",
	}
}

// tightBucket is a fake Heroku bucket just large enough for the budget: it
// holds the burst with RateLimit-Remaining above the limiter's low-water
// mark of 100, and refills a little faster than the budget spends. Two
// limiters that did not share the budget would drain it and meet 429s.
var tightBucket = herokufake.WithBucket(testBurst+200, testRate+5, time.Second)

// bulkSlots is how many bulk rotations one worker process runs at once
// under env's REKEY_CONCURRENCY.
func bulkSlots(t *testing.T, env map[string]string) int {
	t.Helper()
	concurrency, err := strconv.Atoi(env["REKEY_CONCURRENCY"])
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range worker.Lanes() {
		if l.Queues[tasks.QueueBulk] > 0 {
			return l.Slots(concurrency)
		}
	}
	t.Fatal("no lane carries the bulk queue")
	return 0
}

func rotate(t *testing.T, f *testFleet, ids []string, queue string) fleet.Result {
	t.Helper()
	res, err := f.Producer.Rotate(t.Context(), fleet.Request{InstanceIDs: ids, Reason: t.Name(), Queue: queue})
	if err != nil {
		t.Fatal(err)
	}
	if res.Enqueued != len(ids) {
		t.Fatalf("enqueued %d rotations, want %d", res.Enqueued, len(ids))
	}
	return res
}

// finished reports whether n rotations of the batch ended.
func finished(n int) func(store.Batch) bool {
	return func(b store.Batch) bool { return b.Succeeded+b.Failed >= int64(n) }
}

func waitBatch(t *testing.T, f *testFleet, id string, n int, within time.Duration) store.Batch {
	t.Helper()
	b, err := f.WaitBatch(t.Context(), f.workers, id, within, finished(n))
	if err != nil {
		t.Fatal(err)
	}
	if b.Failed > 0 {
		t.Errorf("%d of %d rotations failed: %v", b.Failed, n, b.Failures)
	}
	return b
}

func TestTwoWorkersStayWithinBudget(t *testing.T) {
	const instances = 400 // the burst, then ten seconds at the full rate
	f := startFleet(t, fleetParams{workers: 2, instances: instances, mix: sandbox.DefaultMix,
		env: budgetEnv(), fake: []herokufake.Option{tightBucket}})
	start := time.Now()
	res := rotate(t, f, bench.IDs(f.samples), tasks.QueueBulk)
	waitBatch(t, f, res.BatchID, instances, time.Minute)

	calls := bench.ConfigCalls(f.Fake())
	first, last := bench.Span(calls, func(herokufake.Call) bool { return true })
	t.Logf("%d config calls in %s (first %s after the request); 429s: %d",
		len(calls), last.Sub(first).Round(time.Millisecond), first.Sub(start).Round(time.Millisecond),
		f.Fake().Stats().RateLimited)
	for _, w := range []time.Duration{time.Second, 5 * time.Second} {
		got, bound := f.Fake().MaxInWindow(w, bench.BudgetEndpoints...), bench.Budget(testRate, testBurst, w)
		t.Logf("most calls in any %s window: %d, budget %.0f (%d/s x %s + burst %d)", w, got, bound, testRate, w, testBurst)
		if float64(got) > bound {
			t.Errorf("the fake saw %d calls within %s, more than the budget's %.0f", got, w, bound)
		}
	}
	if n := f.Fake().Stats().RateLimited; n > 0 {
		t.Errorf("the fake answered %d calls with 429", n)
	}
	if len(calls) != instances {
		t.Errorf("%d config calls for %d rotations, want one each", len(calls), instances)
	}
	if n := bench.CountAfter(calls, time.Time{}, bench.InSet(bench.IDs(f.samples))); n != len(calls) {
		t.Errorf("the fake named the add-on of %d of %d calls (V3 by id, V1 by heroku_id)", n, len(calls))
	}
}

func TestRateLimitedRotationsPauseWithoutRetries(t *testing.T) {
	const instances = 30
	// As many 429s as the two workers' bulk lanes run rotations at once,
	// so that the first wave meets them all: each 429 after a pause
	// doubles the next, and a second wave of them, which a loaded machine
	// spreads further, outlasts the wait.
	limited := 2 * bulkSlots(t, budgetEnv())
	f := startFleet(t, fleetParams{workers: 2, instances: instances, env: budgetEnv()})
	f.Fake().Script(herokufake.PatchConfig, slices.Repeat([]herokufake.Fault{herokufake.Respond(429)}, limited)...)
	res := rotate(t, f, bench.IDs(f.samples), tasks.QueueBulk)
	waitBatch(t, f, res.BatchID, instances, time.Minute)

	calls := bench.ConfigCalls(f.Fake())
	var first429, firstOK time.Time
	for _, c := range calls {
		switch {
		case c.Status == 429 && first429.IsZero():
			first429 = c.At
		case bench.Succeeded(c) && firstOK.IsZero():
			firstOK = c.At
		}
	}
	pause := firstOK.Sub(first429)
	t.Logf("%d calls answered 429; the first accepted call came %s after the first 429", f.Fake().Stats().RateLimited, pause.Round(time.Millisecond))
	if n := f.Fake().Stats().RateLimited; n != limited {
		t.Errorf("%d calls answered 429, want the %d scripted: calls went on during the pause", n, limited)
	}
	// The limiter's first pause after a 429 is its default Backoff of 2 s;
	// another process may learn of it up to HoldRefresh (250 ms) late.
	if pause < 1500*time.Millisecond {
		t.Errorf("the first accepted call came %s after the first 429, want the 2s pause", pause)
	}
	for _, it := range res.Items {
		// The batch counts a rotation done at its promotion, inside the
		// task's run: asynq records the task completed when the run
		// returns, a moment later on a loaded machine.
		var info *asynq.TaskInfo
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var err error
			if info, err = f.Inspector.GetTaskInfo(tasks.QueueBulk, tasks.RotateTaskID(it.RotationID)); err != nil {
				t.Fatalf("task of %s: %v", it.InstanceID, err)
			}
			if info.State != asynq.TaskStateActive || time.Now().After(deadline) {
				break
			}
		}
		if info.State != asynq.TaskStateCompleted || info.Retried != 0 {
			t.Errorf("task of %s is %s after %d retries, want completed with none", it.InstanceID, info.State, info.Retried)
		}
	}
	if n := len(bench.ConfigCalls(f.Fake())); n != instances+limited {
		t.Errorf("%d config calls, want %d: one per rotation plus the %d answered 429", n, instances+limited, limited)
	}
}

func TestInteractiveRotationOvertakesBulkWave(t *testing.T) {
	const bulk = 300 // the burst, then five seconds at the full rate
	f := startFleet(t, fleetParams{workers: 2, instances: bulk + 1, mix: sandbox.DefaultMix,
		env: budgetEnv(), fake: []herokufake.Option{tightBucket}})
	ids := bench.IDs(f.samples)
	wave, fresh := ids[:bulk], ids[bulk]
	res := rotate(t, f, wave, tasks.QueueBulk)
	inWave := bench.InSet(wave)
	midWave := testBurst + 2*testRate // past the burst: bulk calls now queue for the budget
	err := bench.Poll(t.Context(), 30*time.Second, fmt.Sprintf("%d bulk calls", midWave), func() (bool, error) {
		return len(bench.ConfigCalls(f.Fake())) >= midWave, f.workers.Exited()
	})
	if err != nil {
		t.Fatal(err)
	}

	asked := time.Now()
	rotate(t, f, []string{fresh}, tasks.QueueInteractive)
	var call herokufake.Call
	err = bench.Poll(t.Context(), 10*time.Second, "the interactive rotation's call", func() (bool, error) {
		var ok bool
		call, ok = bench.FirstFor(bench.ConfigCalls(f.Fake()), fresh)
		return ok, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	delay := call.At.Sub(asked)
	b := waitBatch(t, f, res.BatchID, bulk, time.Minute)
	after := bench.CountAfter(bench.ConfigCalls(f.Fake()), call.At, inWave)
	t.Logf("the interactive rotation reached Heroku %s after it was requested, with %d of %d bulk calls still to come",
		delay.Round(time.Millisecond), after, bulk)
	if delay >= 2*time.Second {
		t.Errorf("the interactive rotation took %s to reach Heroku, want under 2s", delay)
	}
	if after == 0 {
		t.Errorf("the interactive rotation reached Heroku only after the whole bulk wave (%d rotations)", b.Succeeded)
	}
	if n := f.Fake().Stats().RateLimited; n > 0 {
		t.Errorf("the fake answered %d calls with 429", n)
	}
}
