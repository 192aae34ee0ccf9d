package bench_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/bench"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

var benchInstances = flag.Int("instances", 10_000, "BenchmarkFleet: how many instances to rotate")

// BenchmarkFleet's world: Heroku's budget and rekey's default share of it,
// with time sped up 60 times, and three worker processes.
const (
	speedUp          = 60
	benchPerHour     = 4000 * speedUp // REKEY_HEROKU_RATE: the default 4000/h
	benchPerSecond   = float64(benchPerHour) / 3600
	benchWorkers     = 3
	benchConcurrency = 20
	rawEnqueuers     = 32
)

// BenchmarkFleet rotates a fleet once, end to end, and prints one table of
// what it cost: run it with -benchtime 1x (make bench). Revoke tasks wait in
// the paused revoke queue until every rotation is promoted, so the memory
// they hold can be measured; then they run.
func BenchmarkFleet(b *testing.B) {
	r := &fleetRun{b: b, n: *benchInstances, started: time.Now()}
	r.setup()
	r.rawEnqueue()
	r.wave()
	r.revokes()
	r.finish()
	fmt.Print("\n", r.report(), "\n")
}

// fleetRun is one run of BenchmarkFleet and what it measured.
type fleetRun struct {
	b       *testing.B
	n       int
	bin     string
	started time.Time
	h       *bench.Harness
	w       *bench.Workers
	redis   *redistest.Redis
	waveIDs []string
	fresh   string
	// v1 counts the V1 instances rotated (the wave's and the fresh one),
	// each of which costs a read-back besides its push.
	v1 int

	setupTook, provisionTook time.Duration
	rawRate, enqueueRate     float64
	start, lastPush          time.Time
	interactive              time.Duration
	interactiveAt            time.Time
	batch                    store.Batch
	batchID, freshBatch      string
	cliOutput                string
	commands0, byCommand     map[string]int64
	observed0                map[string]int64
	memory0, memory1         int64
	waitingRevokes           int64
	revokeTaskBytes          float64
	revokeTook               time.Duration
	usage                    bench.Usage
	commands                 int64
}

func (r *fleetRun) fatal(err error) {
	r.b.Helper()
	if err != nil {
		if r.w != nil {
			_, _ = r.w.Stop(25 * time.Second)
		}
		r.b.Fatal(err)
	}
}

func (r *fleetRun) setup() {
	r.bin = rekeyBinary(r.b)
	r.redis = redistest.New(r.b)
	env := map[string]string{
		"REKEY_HEROKU_RATE":         strconv.Itoa(benchPerHour),
		"REKEY_CONCURRENCY":         strconv.Itoa(benchConcurrency),
		"REKEY_GRACE":               "10s",
		"REKEY_PRIVATE_SPACE_GRACE": "20s",
	}
	h, err := bench.Start(bench.Params{RedisURL: r.redis.URL, Env: env,
		Fake: []herokufake.Option{herokufake.WithBucket(4500, 75, time.Second)}})
	r.fatal(err)
	r.h = h
	r.b.Cleanup(h.Close)
	ctx := context.Background()
	provisioned := time.Now()
	samples, err := h.Provision(ctx, 1, r.n, sandbox.DefaultMix)
	r.fatal(err)
	r.provisionTook = time.Since(provisioned)
	r.waveIDs = bench.IDs(samples)
	r.v1 = countV1(samples)
	r.w, err = h.StartWorkers(ctx, r.bin, benchWorkers, r.b.TempDir())
	r.fatal(err)
	r.fatal(h.Inspector.PauseQueue(tasks.QueueRevoke))
	r.setupTook = time.Since(r.started)
}

// rawEnqueue measures asynq alone: the same rotate tasks enqueued from 32
// goroutines on one client, into a database of their own that is flushed
// before the wave.
func (r *fleetRun) rawEnqueue() {
	db := redistest.New(r.b)
	opt, err := redis.ParseURL(db.URL)
	r.fatal(err)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	q := asynq.NewClientFromRedisClient(rdb)
	next, failed := atomic.Int64{}, atomic.Value{}
	start := time.Now()
	var wg sync.WaitGroup
	for range rawEnqueuers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(r.n); i = next.Add(1) - 1 {
				t, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: r.waveIDs[i], BatchID: "bat_raw", Reason: "bench"})
				if err == nil {
					_, err = q.Enqueue(t)
				}
				if err != nil {
					failed.Store(err)
				}
			}
		})
	}
	wg.Wait()
	r.rawRate = float64(r.n) / time.Since(start).Seconds()
	if err, ok := failed.Load().(error); ok {
		r.fatal(fmt.Errorf("raw enqueue: %w", err))
	}
	r.fatal(db.Client.FlushDB(context.Background()).Err())
}

// wave rotates every instance with `rekey rotate --all`, asks for one
// interactive rotation halfway, and waits until every rotation is promoted.
func (r *fleetRun) wave() {
	ctx := context.Background()
	var err error
	r.commands0, err = bench.CommandCounts(ctx, r.h.Observer)
	r.fatal(err)
	r.memory0, err = bench.UsedMemory(ctx, r.h.Observer)
	r.fatal(err)
	r.observed0 = r.h.ObserverCommands()

	// The bulk queue is paused while `rekey rotate --all` runs, so that it
	// is measured on the same quiet machine as asynq alone; the wave starts
	// when it is unpaused.
	r.fatal(r.h.Inspector.PauseQueue(tasks.QueueBulk))
	r.start = time.Now()
	r.batchID, r.cliOutput, err = bench.RotateAll(ctx, r.bin, r.h.Env, "bench", tasks.QueueBulk)
	r.fatal(err)
	took := time.Since(r.start)
	r.fatal(r.h.Inspector.UnpauseQueue(tasks.QueueBulk))
	b, err := r.h.Store.Batch(ctx, r.batchID)
	r.fatal(err)
	if b.Enqueued != int64(r.n) {
		r.fatal(fmt.Errorf("rekey rotate --all enqueued %d rotations, want %d", b.Enqueued, r.n))
	}
	r.enqueueRate = float64(b.Enqueued) / took.Seconds()
	r.interactiveMidWave()
	r.batch, err = r.h.WaitBatch(ctx, r.w, r.batchID, 8*time.Minute, func(b store.Batch) bool {
		return b.Succeeded+b.Failed >= int64(r.n)
	})
	r.fatal(err)
	_, r.lastPush = bench.Span(bench.ConfigCalls(r.h.Fake()), bench.InSet(r.waveIDs))
}

// interactiveMidWave registers one more instance and, once half the wave
// reached Heroku, requests its rotation on the interactive queue, as a
// customer's button does; it measures how long its call takes to get there.
func (r *fleetRun) interactiveMidWave() {
	ctx := context.Background()
	fresh, err := r.h.Provision(ctx, r.n+1, 1, sandbox.DefaultMix)
	r.fatal(err)
	r.fresh = fresh[0].ID
	r.v1 += countV1(fresh)
	r.fatal(bench.Poll(ctx, 5*time.Minute, "half the wave", func() (bool, error) {
		return len(bench.ConfigCalls(r.h.Fake())) >= r.n/2, r.w.Exited()
	}))
	asked := time.Now()
	res, err := r.h.Producer.Rotate(ctx, fleet.Request{InstanceIDs: []string{r.fresh}, Reason: "bench: interactive",
		Queue: tasks.QueueInteractive})
	r.fatal(err)
	r.freshBatch = res.BatchID
	var call herokufake.Call
	r.fatal(bench.Poll(ctx, time.Minute, "the interactive call", func() (bool, error) {
		var ok bool
		call, ok = bench.FirstFor(bench.ConfigCalls(r.h.Fake()), r.fresh)
		return ok, nil
	}))
	r.interactiveAt = call.At
	r.interactive = call.At.Sub(asked)
}

// revokes measures what the waiting revoke tasks hold, then lets them run.
func (r *fleetRun) revokes() {
	ctx := context.Background()
	var err error
	r.memory1, err = bench.UsedMemory(ctx, r.h.Observer)
	r.fatal(err)
	qi, err := r.h.Inspector.GetQueueInfo(tasks.QueueRevoke)
	r.fatal(err)
	r.waitingRevokes = int64(qi.Pending + qi.Scheduled)
	r.revokeTaskBytes, _, err = bench.KeyBytes(ctx, r.h.Observer, "asynq:{revoke}:t:*", 1000)
	r.fatal(err)
	unpaused := time.Now()
	r.fatal(r.h.Inspector.UnpauseQueue(tasks.QueueRevoke))
	// The harness's invariant checker bounds how fast revocations go:
	// minutes at 10,000 on a slow machine (docs/benchmarks.md).
	for _, id := range []string{r.batchID, r.freshBatch} {
		_, err := r.h.WaitBatch(ctx, r.w, id, 10*time.Minute, func(b store.Batch) bool { return b.Revoked >= b.Succeeded })
		r.fatal(err)
	}
	r.revokeTook = time.Since(unpaused)
}

// finish stops the workers as Heroku does and reads the run's totals.
func (r *fleetRun) finish() {
	var err error
	r.usage, err = r.w.Stop(25 * time.Second)
	r.fatal(err)
	commands1, err := bench.CommandCounts(context.Background(), r.h.Observer)
	r.fatal(err)
	r.byCommand = map[string]int64{}
	for name, n := range commands1 {
		r.byCommand[name] = n - r.commands0[name]
		r.commands += n - r.commands0[name]
	}
	// The harness's own reads (progress, the checker, INFO) are not rekey's.
	for name, n := range r.h.ObserverCommands() {
		d := n - r.observed0[name]
		r.commands -= d
		r.byCommand[name] = max(r.byCommand[name]-d, 0)
	}
	if v := r.h.Sandbox.Checker.Violations(); len(v) > 0 {
		r.b.Errorf("%d invariant violations, first: %s", len(v), v[0])
	}
	if r.batch.Failed > 0 {
		r.b.Errorf("%d rotations failed: %v", r.batch.Failed, r.batch.Failures)
	}
	fmt.Fprintf(os.Stderr, "BenchmarkFleet: whole run took %s\n", time.Since(r.started).Round(time.Second))
}

// countV1 counts the V1 instances of samples.
func countV1(samples []sandbox.Sample) int {
	n := 0
	for _, sm := range samples {
		if sm.APIVersion == store.APIv1 {
			n++
		}
	}
	return n
}
