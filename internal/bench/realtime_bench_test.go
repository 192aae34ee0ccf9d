package bench_test

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/bench"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/worker"
	"github.com/rekeyhq/rekey/tasks"
)

var (
	realtimeInstances = flag.Int("realtime-instances", 300, "BenchmarkRealtimeWave: how many instances each wave rotates")
	realtimeOnly      = flag.String("realtime-scenarios", "clean,faults,kill", "BenchmarkRealtimeWave: which scenarios to run")
	realtimeLogs      = flag.String("realtime-logs", "", "BenchmarkRealtimeWave: keep the workers' logs in this directory, at debug level")
)

// BenchmarkRealtimeWave's world: Heroku's real refill and rekey's default
// budget, in real time.
const (
	realtimePerHour = 4000 // REKEY_HEROKU_RATE, the default
	// realtimeBurst is the limiter's default background burst at that rate:
	// ten seconds of budget (11 calls) less the interactive reserve of 2.
	realtimeBurst = realtimePerHour/360 - 2
	// idleWindow is how long the idle workers' Redis commands are counted.
	idleWindow = 10 * time.Second
)

// realtimeScenario is one wave of BenchmarkRealtimeWave.
type realtimeScenario struct {
	name      string
	errorRate float64 // share of config pushes answered 503
	hog       bool    // a busy-loop process per core during the wave
	kill      bool    // SIGKILL one worker a third into the wave
	// upgrade registers the instances without current_config, as earlier
	// versions did: each one's first rotation reads its config from Heroku
	// before minting.
	upgrade bool
}

// mix is the scenario's sample instances.
func (sc realtimeScenario) mix() sandbox.Mix {
	m := sandbox.DefaultMix
	m.WithoutCurrentConfig = sc.upgrade
	return m
}

// BenchmarkRealtimeWave rotates a few hundred instances at Heroku's real rate
// with three `rekey worker` processes, once per scenario, and prints one
// table: run it with -benchtime 1x (make bench). It takes about five minutes
// a scenario, ten for upgrade, which is why make bench leaves upgrade out.
func BenchmarkRealtimeWave(b *testing.B) {
	all := []realtimeScenario{
		{name: "clean"},
		{name: "faults", errorRate: 0.05, hog: true},
		{name: "kill", kill: true},
		{name: "upgrade", upgrade: true},
	}
	rep := &bench.Report{
		Title: fmt.Sprintf("rekey real-time wave: %d rotations at Heroku's real rate, three worker processes", *realtimeInstances),
	}
	started := time.Now()
	for _, sc := range all {
		if !slices.Contains(strings.Split(*realtimeOnly, ","), sc.name) {
			continue
		}
		r := &realtimeRun{b: b, sc: sc, n: *realtimeInstances}
		r.run()
		r.report(rep)
		rep.Machine = bench.Machine(bench.ServerVersion(context.Background(), r.h.Observer))
	}
	rep.Setup = []string{
		"heroku: fake bucket 4500 calls, refill 75/min (Heroku's real rate)",
		fmt.Sprintf("budget: REKEY_HEROKU_RATE=%d/h = %.3f calls/s, default burst (%d background calls)", realtimePerHour, float64(realtimePerHour)/3600, realtimeBurst),
		fmt.Sprintf("workers: %d `rekey worker` processes, REKEY_CONCURRENCY=%d, REKEY_GRACE=10s (20s in Private Spaces)", benchWorkers, benchConcurrency),
		"wave: `rekey rotate --all --queue bulk`; one more instance rotated interactively once half the wave reached Heroku",
		"scenarios: clean; faults = 5% of config pushes answered 503 and a busy-loop process per core; kill = one worker SIGKILLed a third into the wave",
		"upgrade = clean with every instance registered without current_config, as before this version: each first rotation reads the add-on's config (one more budget call); about ten minutes, so not in the default -realtime-scenarios (make bench)",
	}
	fmt.Print("\n", rep.String(), "\n")
	fmt.Fprintf(os.Stderr, "BenchmarkRealtimeWave: took %s\n", time.Since(started).Round(time.Second))
}

// realtimeRun is one scenario's wave and what it measured.
type realtimeRun struct {
	b   *testing.B
	sc  realtimeScenario
	n   int
	h   *bench.Harness
	w   *bench.Workers
	ids []string

	idlePerSecond   float64
	start, lastPush time.Time
	makespan        time.Duration
	lastGap         float64 // in budget intervals
	lastCallGap     float64 // the same between the last budget calls, V1 read-backs and failed pushes included
	// gapFailed and gapReads are the pushes answered 5xx and the reads
	// that came between the two pushes of lastGap.
	gapFailed, gapReads       int
	calls, failedCalls        int
	readBacks                 int // V1 read-backs (a V1 push is confirmed by one)
	reads                     int // reads of the config Heroku holds before an instance's first push
	v1                        int // V1 instances in the wave
	returned                  int
	interactive               time.Duration
	commands                  float64 // per rotation, idle cost taken out
	topCommands               string
	succeeded, failed         int64
	killedAt                  time.Time
	interval                  time.Duration
	enqueued                  time.Duration // `rekey rotate --all`'s run
	batchID, freshID, freshBt string
	// connections is the most connections the worker processes held to
	// Redis at once during the wave (watchConnections).
	connections int
	// mon splits the commands into those clients sent and those their
	// scripts ran; observers collects the observer's connections, whose
	// commands it leaves out.
	mon       *bench.Monitor
	observers map[string]bool
	// idleSent and idleRan are the idle workers' per second, sent and run
	// by scripts; sent and ran the same per rotation, idle cost taken out.
	idleSent, idleRan, sent, ran float64
	// idleBy is the idle workers' commands per second by what they count
	// for (bench.Tally.BySource); sources the wave's per rotation, idle
	// cost taken out, as a sentence.
	idleBy  map[string]float64
	sources string
	// listed counts the commands asynq's listing script ran for the
	// harness's watch of the retry sets, by name: the observer counts
	// the script's call, Redis also the commands it runs.
	listed map[string]int64
}

func (r *realtimeRun) fatal(err error) {
	r.b.Helper()
	if err != nil {
		if r.w != nil {
			_, _ = r.w.Stop(25 * time.Second)
		}
		r.b.Fatal(err)
	}
}

func (r *realtimeRun) run() {
	ctx := context.Background()
	r.interval = time.Hour / realtimePerHour
	bin := rekeyBinary(r.b)
	rd := redistest.New(r.b)
	env := map[string]string{
		"REKEY_HEROKU_RATE":         strconv.Itoa(realtimePerHour),
		"REKEY_CONCURRENCY":         strconv.Itoa(benchConcurrency),
		"REKEY_GRACE":               "10s",
		"REKEY_PRIVATE_SPACE_GRACE": "20s",
	}
	logDir := r.b.TempDir()
	if *realtimeLogs != "" {
		logDir = *realtimeLogs
		env["REKEY_LOG_LEVEL"] = "debug"
	}
	h, err := bench.Start(bench.Params{RedisURL: rd.URL, Env: env,
		Fake: []herokufake.Option{herokufake.WithBucket(4500, 75, time.Minute)}})
	r.fatal(err)
	r.h = h
	r.b.Cleanup(h.Close)
	samples, err := h.Provision(ctx, 1, r.n, r.sc.mix())
	r.fatal(err)
	r.ids = bench.IDs(samples)
	for _, sm := range samples {
		if sm.APIVersion == store.APIv1 {
			r.v1++
		}
	}
	r.mon, err = bench.StartMonitor(rd.URL)
	r.fatal(err)
	defer r.mon.Close()
	r.observers = map[string]bool{}
	r.w, err = h.StartWorkers(ctx, bin, benchWorkers, logDir)
	r.fatal(err)
	r.measureIdle()
	if r.sc.errorRate > 0 {
		r.script503()
	}
	if r.sc.hog {
		stop := startHog(r.b)
		defer stop()
	}

	c0, err := bench.CommandCounts(ctx, h.Observer)
	r.fatal(err)
	o0 := h.ObserverCommands()
	t0, err := r.mon.Tally()
	r.fatal(err)
	from := time.Now()
	var watchers sync.WaitGroup
	returned := map[string]bool{}
	r.listed = map[string]int64{}
	done := make(chan struct{})
	watchers.Go(func() { r.watchReturned(done, returned) })
	r.start = time.Now()
	r.batchID, _, err = bench.RotateAll(ctx, bin, h.Env, "bench realtime", tasks.QueueBulk)
	r.fatal(err)
	r.enqueued = time.Since(r.start)
	watchers.Go(func() { r.watchConnections(done) })
	// The instance rotated interactively mid-wave is registered after the
	// wave was requested, so that it is not part of it.
	fresh, err := h.Provision(ctx, r.n+1, 1, r.sc.mix())
	r.fatal(err)
	r.freshID = fresh[0].ID
	if r.sc.kill {
		r.fatal(bench.Poll(ctx, 10*time.Minute, "a third of the wave", func() (bool, error) {
			return len(bench.ConfigCalls(h.Fake())) >= r.n/3, nil
		}))
		r.killedAt = time.Now()
		r.fatal(r.w.Kill(0))
	}
	r.interactiveMidWave()
	ideal := time.Duration(r.needed()-realtimeBurst) * r.interval
	batch, err := h.WaitBatch(ctx, r.w, r.batchID, 2*ideal+3*time.Minute, func(b store.Batch) bool {
		return b.Succeeded+b.Failed >= int64(r.n)
	})
	r.fatal(err)
	r.succeeded, r.failed = batch.Succeeded, batch.Failed
	for _, id := range []string{r.batchID, r.freshBt} {
		_, err := h.WaitBatch(ctx, r.w, id, 3*time.Minute, func(b store.Batch) bool { return b.Revoked >= b.Succeeded })
		r.fatal(err)
	}
	close(done)
	watchers.Wait()
	r.returned = len(returned)
	c1, err := bench.CommandCounts(ctx, h.Observer)
	r.fatal(err)
	t1, err := r.mon.Tally()
	r.fatal(err)
	elapsed := time.Since(from)
	r.countCommands(c0, c1, o0, elapsed)
	r.noteObservers()
	sent, ran := t1.Since(t0, r.observers)
	r.attribute(t1.BySource(t0, r.observers), t1.Keys, elapsed)
	r.sent = (float64(sent) - r.idleSent*elapsed.Seconds()) / float64(r.n+1)
	r.ran = (float64(ran) - r.idleRan*elapsed.Seconds()) / float64(r.n+1)
	r.measurePushes()
	if *realtimeLogs != "" {
		r.fatal(r.writeCalls(filepath.Join(*realtimeLogs, r.sc.name+"-heroku-calls.tsv")))
	}
	_, err = r.w.Stop(25 * time.Second)
	r.fatal(err)
	if v := h.Sandbox.Checker.Violations(); len(v) > 0 {
		r.b.Errorf("%s: %d invariant violations, first: %s", r.sc.name, len(v), v[0])
	}
}

// measureIdle counts what the idle workers cost Redis per second.
func (r *realtimeRun) measureIdle() {
	ctx := context.Background()
	time.Sleep(2 * time.Second) // start-up work done
	c0, err := bench.Commands(ctx, r.h.Observer)
	r.fatal(err)
	o0 := sum(r.h.ObserverCommands())
	t0, err := r.mon.Tally()
	r.fatal(err)
	time.Sleep(idleWindow)
	c1, err := bench.Commands(ctx, r.h.Observer)
	r.fatal(err)
	o1 := sum(r.h.ObserverCommands())
	t1, err := r.mon.Tally()
	r.fatal(err)
	r.idlePerSecond = float64((c1-c0)-(o1-o0)) / idleWindow.Seconds()
	r.noteObservers()
	sent, ran := t1.Since(t0, r.observers)
	r.idleSent, r.idleRan = float64(sent)/idleWindow.Seconds(), float64(ran)/idleWindow.Seconds()
	r.idleBy = map[string]float64{}
	for what, n := range t1.BySource(t0, r.observers) {
		r.idleBy[what] = float64(n) / idleWindow.Seconds()
	}
}

// anyQueue is an asynq key with its queue's name written "*": one of
// asynq's scripts serves every queue, and its first call named one of them.
func anyQueue(key string) string {
	open, rest, ok := strings.Cut(key, "{")
	_, after, ok2 := strings.Cut(rest, "}")
	if !ok || !ok2 {
		return key
	}
	return open + "{*}" + after
}

// attribute works out where a rotation's commands went: by each script
// (its call and the commands it ran) and each plain command, the idle
// workers' rate of the same taken out, grouped into the store's scripts
// (by name, store.ScriptNames), asynq's (by hash, and the first key of
// the first call seen) and the rest. A source the idle workers used more
// than the wave did comes out below zero: the idle rate is a 10 s sample.
func (r *realtimeRun) attribute(by map[string]int64, keys map[string]string, elapsed time.Duration) {
	names := store.ScriptNames()
	perRotation := map[string]float64{}
	for what, n := range by {
		perRotation[what] += float64(n)
	}
	for what, rate := range r.idleBy {
		perRotation[what] -= rate * elapsed.Seconds()
	}
	rotations := float64(r.n + 1)
	labelled := map[string]float64{}
	var ofStore, ofAsynq, otherScripts, plain float64
	for what, n := range perRotation {
		n /= rotations
		hash, isScript := strings.CutPrefix(what, "script ")
		label := what
		switch {
		case !isScript:
			plain += n
		case names[hash] != "":
			label = names[hash]
			ofStore += n
		case strings.HasPrefix(keys[hash], "asynq:"):
			// Several of asynq's scripts take the same first key (a task's
			// hash: enqueue, schedule, retry): the hash tells them apart.
			label = fmt.Sprintf("asynq %.8s on %s", hash, anyQueue(keys[hash]))
			ofAsynq += n
		default:
			label = fmt.Sprintf("script %.8s on %s", hash, keys[hash])
			otherScripts += n
		}
		labelled[label] += n
	}
	top := slices.Collect(maps.Keys(labelled))
	slices.SortFunc(top, func(a, b string) int { return cmp.Compare(labelled[b], labelled[a]) })
	var parts []string
	for _, label := range top[:min(12, len(top))] {
		parts = append(parts, fmt.Sprintf("%s %.1f", label, labelled[label]))
	}
	r.sources = fmt.Sprintf("store scripts %.1f, asynq's scripts %.1f, other scripts %.1f, plain commands %.1f; %s",
		ofStore, ofAsynq, otherScripts, plain, strings.Join(parts, ", "))
}

// noteObservers adds the observer's connections open now to r.observers.
func (r *realtimeRun) noteObservers() {
	addrs, err := r.h.ObserverAddrs(context.Background())
	r.fatal(err)
	maps.Copy(r.observers, addrs)
}

// script503 answers 5% of the config pushes 503, drawn from a fixed seed.
func (r *realtimeRun) script503() {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, e := range bench.ConfigEndpoints {
		faults := make([]herokufake.Fault, 2*r.n)
		for i := range faults {
			faults[i] = herokufake.Respond(200)
			if rng.Float64() < r.sc.errorRate {
				faults[i] = herokufake.Respond(503)
			}
		}
		r.h.Fake().Script(e, faults...)
	}
}

// startHog runs one busy-loop process per core until stop.
func startHog(tb testing.TB) (stop func()) {
	var procs []*exec.Cmd
	for range runtime.NumCPU() {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	return func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}
}

// watchReturned polls the bulk queue's retry set until done and records
// every rotate task that went back to asynq to wait for budget.
func (r *realtimeRun) watchReturned(done <-chan struct{}, seen map[string]bool) {
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, q := range []string{tasks.QueueBulk, tasks.QueueInteractive} {
			infos, err := r.h.Inspector.ListRetryTasks(q, asynq.PageSize(1000))
			if err != nil {
				continue
			}
			// asynq v0.26's listing script: one ZRANGE, one HMGET a task.
			r.listed["zrange"]++
			r.listed["hmget"] += int64(len(infos))
			for _, info := range infos {
				if strings.Contains(info.LastErr, "Heroku API budget") {
					seen[info.ID] = true
				}
			}
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// watchConnections counts the workers' connections to Redis every 500 ms
// until done and keeps the most (bench.Harness.WorkerConnections).
func (r *realtimeRun) watchConnections(done <-chan struct{}) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if n, err := r.h.WorkerConnections(context.Background()); err == nil {
			r.connections = max(r.connections, n)
		}
		if addrs, err := r.h.ObserverAddrs(context.Background()); err == nil {
			maps.Copy(r.observers, addrs)
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// interactiveMidWave rotates one more instance on the interactive queue once
// half the wave reached Heroku and measures how long its push takes to get
// there.
func (r *realtimeRun) interactiveMidWave() {
	ctx := context.Background()
	r.fatal(bench.Poll(ctx, 10*time.Minute, "half the wave", func() (bool, error) {
		return len(bench.ConfigCalls(r.h.Fake())) >= r.n/2, nil
	}))
	asked := time.Now()
	res, err := r.h.Producer.Rotate(ctx, fleet.Request{InstanceIDs: []string{r.freshID}, Reason: "bench: interactive",
		Queue: tasks.QueueInteractive})
	r.fatal(err)
	r.freshBt = res.BatchID
	var call herokufake.Call
	r.fatal(bench.Poll(ctx, time.Minute, "the interactive call", func() (bool, error) {
		var ok bool
		call, ok = bench.FirstFor(bench.ConfigCalls(r.h.Fake()), r.freshID)
		return ok, nil
	}))
	r.interactive = call.At.Sub(asked)
}

// countCommands works out Redis commands per rotation: the server's count
// over the wave and its revocations, less the harness's own (those its
// calls of asynq's listing script ran included) and the idle workers' fixed
// cost over the same time.
func (r *realtimeRun) countCommands(c0, c1, o0 map[string]int64, elapsed time.Duration) {
	o1 := r.h.ObserverCommands()
	by := map[string]float64{}
	var total float64
	for name, n := range c1 {
		if name == "client|setname" {
			continue // the workers' connections naming themselves (bench.WorkerClientName)
		}
		d := float64(n-c0[name]) - float64(o1[name]-o0[name]) - float64(r.listed[name])
		by[name] = max(d, 0)
		total += max(d, 0)
	}
	rotations := float64(r.n + 1)
	r.commands = (total - r.idlePerSecond*elapsed.Seconds()) / rotations
	names := make([]string, 0, len(by))
	for name := range by {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return int(by[b] - by[a]) })
	var top []string
	for _, name := range names[:min(8, len(names))] {
		top = append(top, fmt.Sprintf("%s %.1f", name, by[name]/rotations))
	}
	r.topCommands = strings.Join(top, ", ")
}

// writeCalls writes every call the fake saw to path, one a line: seconds
// since the wave started, endpoint, status, add-on id; with -realtime-logs,
// to tell where a wave left budget unused.
func (r *realtimeRun) writeCalls(path string) error {
	var b strings.Builder
	for _, c := range r.h.Fake().Calls() { // no endpoint named: every call
		fmt.Fprintf(&b, "%.3f\t%s\t%d\t%s\n", c.At.Sub(r.start).Seconds(), c.Endpoint, c.Status, c.Addon)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// measurePushes reads the wave's pushes from the fake: makespan, extra
// calls, and the longest gap between the last ten accepted pushes.
func (r *realtimeRun) measurePushes() {
	calls := bench.ConfigCalls(r.h.Fake())
	keep := bench.InSet(r.ids)
	var times, failed, reads []time.Time
	for _, c := range calls {
		if !keep(c) {
			continue
		}
		r.calls++
		if !bench.Succeeded(c) {
			r.failedCalls++
			failed = append(failed, c.At)
			continue
		}
		times = append(times, c.At)
	}
	firstPush := map[string]time.Time{}
	for _, c := range calls {
		if t, ok := firstPush[c.Addon]; !ok || c.At.Before(t) {
			firstPush[c.Addon] = c.At
		}
	}
	// A read before the instance's first push is the first rotation's read
	// of the config Heroku holds; after it, a read-back.
	for _, c := range r.h.Fake().Calls(herokufake.V1Get, herokufake.GetConfig) {
		if !keep(c) {
			continue
		}
		if t, ok := firstPush[c.Addon]; !ok || c.At.Before(t) {
			r.reads++
		} else {
			r.readBacks++
		}
		reads = append(reads, c.At)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if len(times) == 0 {
		return
	}
	r.lastPush = times[len(times)-1]
	r.makespan = r.lastPush.Sub(r.start)
	var from, to time.Time
	r.lastGap, from, to = r.longestGap(times)
	r.gapFailed, r.gapReads = countBetween(failed, from, to), countBetween(reads, from, to)
	// Between two pushes may come a V1 read-back or a push answered 5xx,
	// which spend the budget too: the gap between the last calls says
	// whether the budget idled.
	spent := slices.Concat(times, failed, reads)
	slices.SortFunc(spent, func(a, b time.Time) int { return a.Compare(b) })
	r.lastCallGap, _, _ = r.longestGap(spent)
}

// longestGap is the longest gap between the last ten of times, sorted, in
// budget intervals, and the two times that bound it.
func (r *realtimeRun) longestGap(times []time.Time) (intervals float64, from, to time.Time) {
	var gap time.Duration
	for i := max(1, len(times)-10); i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d > gap {
			gap, from, to = d, times[i-1], times[i]
		}
	}
	return float64(gap) / float64(r.interval), from, to
}

// countBetween is how many of times fall after from and before to.
func countBetween(times []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range times {
		if t.After(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// needed is the Heroku calls the wave cannot do without: one push per
// instance, for a V1 instance the read-back that confirms its push (V1's
// answer says nothing of what Heroku holds), and in upgrade one read of
// each instance's config before its first mint. The ideal makespan is
// those calls past the burst at the budget's pace.
func (r *realtimeRun) needed() int { return r.n + r.v1 + r.firstReads() }

// firstReads is how many reads of the config Heroku holds the wave cannot
// do without: one an instance registered without current_config.
func (r *realtimeRun) firstReads() int {
	if r.sc.upgrade {
		return r.n
	}
	return 0
}

func (r *realtimeRun) report(rep *bench.Report) {
	ideal := time.Duration(r.needed()-realtimeBurst) * r.interval
	ratio := float64(r.makespan) / float64(ideal)
	extra := r.calls + r.readBacks + r.reads - r.needed()
	// Each extra call (a 503 answered, then retried) takes one more interval.
	extraIdeal := float64(extra) * float64(r.interval) / float64(ideal)
	target, ok := "<= 1.03", ratio <= 1.03
	switch {
	case r.sc.errorRate > 0:
		target, ok = fmt.Sprintf("<= %.3f", 1.05+extraIdeal), ratio <= 1.05+extraIdeal
	case r.sc.kill:
		target, ok = "", true
	}
	p := r.sc.name + ": "
	verdict := bench.Check(ok)
	if target == "" {
		verdict = ""
	}
	rep.Add(bench.Row{Metric: p + "makespan / ideal", Value: fmt.Sprintf("%.3f", ratio), Target: target, Verdict: verdict,
		Comment: fmt.Sprintf("%s from starting `rotate --all` (it ran %s) to the last push; ideal (%d + %d V1 read-backs + %d first reads - %d) / %.3f per s = %s",
			r.makespan.Round(100*time.Millisecond), r.enqueued.Round(10*time.Millisecond), r.n, r.v1, r.firstReads(), realtimeBurst,
			float64(realtimePerHour)/3600, ideal.Round(100*time.Millisecond))})
	if r.sc.kill {
		rep.Add(bench.Row{Metric: p + "  SIGKILL", Value: fmt.Sprintf("%s in", r.killedAt.Sub(r.start).Round(time.Second)),
			Comment: fmt.Sprintf("worker 1 killed; last push %s after the ideal", (r.makespan - ideal).Round(100*time.Millisecond))})
	}
	rep.Add(bench.Row{Metric: p + "config calls / rotations", Value: fmt.Sprintf("%d / %d", r.calls, r.n),
		Comment: fmt.Sprintf("%d answered 5xx; %d V1 read-backs for %d V1 instances; extra calls are %.3f of the ideal",
			r.failedCalls, r.readBacks, r.v1, extraIdeal)})
	if r.sc.upgrade {
		rep.Add(bench.Row{Metric: p + "first-rotation reads", Value: fmt.Sprintf("%d / %d", r.reads, r.firstReads()),
			Comment: "reads of the add-on's config before an instance's first push (V3 GET /addons/{id}/config, V1 GET /vendor/apps/{id}), of those expected"})
	}
	rep.Add(bench.Row{Metric: p + "longest gap, last 10 pushes", Value: fmt.Sprintf("%.2f intervals", r.lastGap),
		Target: "<= 3", Verdict: bench.Check(r.lastGap <= 3),
		Comment: fmt.Sprintf("interval %s; between the two: %d pushes answered 5xx, %d reads or read-backs", r.interval, r.gapFailed, r.gapReads)})
	rep.Add(bench.Row{Metric: p + "  last 10 budget calls", Value: fmt.Sprintf("%.2f intervals", r.lastCallGap),
		Comment: "the same between every call that spends the budget: pushes, those answered 5xx, reads and read-backs"})
	rep.Add(bench.Row{Metric: p + "tasks returned to asynq for budget", Value: strconv.Itoa(r.returned), Target: "0",
		Verdict: bench.Check(r.returned == 0), Comment: "rotate tasks seen in asynq's retry set waiting for budget"})
	rep.Add(bench.Row{Metric: p + "interactive mid-wave -> Heroku", Value: r.interactive.Round(time.Millisecond).String(),
		Target: "<= 1s", Verdict: bench.Check(r.interactive <= time.Second)})
	rep.Add(bench.Row{Metric: p + "Redis commands per rotation", Value: fmt.Sprintf("%.1f", r.commands), Target: "<= 60",
		Verdict: bench.Check(r.commands <= 60), Comment: "wave and revocations, idle cost taken out; by command, idle cost left in: " + r.topCommands})
	rep.Add(bench.Row{Metric: p + "  where they went", Value: "",
		Comment: "per rotation, idle cost taken out of each (MONITOR; a script with the commands it ran): " + r.sources})
	rep.Add(bench.Row{Metric: p + "  sent by clients", Value: fmt.Sprintf("%.1f", r.sent),
		Comment: fmt.Sprintf("of those, the commands rekey's processes and asynq sent (MONITOR); %.1f more ran inside their Lua scripts", r.ran)})
	rep.Add(bench.Row{Metric: p + "  idle workers, per second", Value: fmt.Sprintf("%.1f", r.idlePerSecond),
		Comment: fmt.Sprintf("Redis commands/s of %d idle worker processes over %s: %.1f sent, %.1f run by scripts",
			benchWorkers, idleWindow, r.idleSent, r.idleRan)})
	pool, err := r.h.WorkerPoolSize()
	r.fatal(err)
	ceiling := benchWorkers * (pool + len(worker.Lanes()))
	rep.Add(bench.Row{Metric: p + "Redis connections, most at once", Value: strconv.Itoa(r.connections),
		Target: fmt.Sprintf("<= %d", ceiling), Verdict: bench.Check(r.connections <= ceiling),
		Comment: fmt.Sprintf("the workers' in CLIENT LIST every 500 ms: %d workers, each at most a pool of %d and %d lanes' subscriptions",
			benchWorkers, pool, len(worker.Lanes()))})
	rep.Add(bench.Row{Metric: p + "rotations succeeded / failed", Value: fmt.Sprintf("%d / %d", r.succeeded, r.failed)})
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
