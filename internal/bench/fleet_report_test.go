package bench_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/bench"
	"github.com/rekeyhq/rekey/internal/herokufake"
)

// report renders what the run measured as one table.
func (r *fleetRun) report() *bench.Report {
	rep := &bench.Report{
		Title:   fmt.Sprintf("rekey fleet benchmark: %d rotations against the fake Heroku, time sped up %dx", r.n, speedUp),
		Machine: bench.Machine(bench.ServerVersion(context.Background(), r.h.Observer)),
		Setup: []string{
			fmt.Sprintf("heroku: fake bucket 4500 calls, refill 75/s (Heroku's 75/min x %d)", speedUp),
			fmt.Sprintf("budget: REKEY_HEROKU_RATE=%d/h = %.1f calls/s (the default 4000/h x %d), default burst and reserve", benchPerHour, benchPerSecond, speedUp),
			fmt.Sprintf("workers: %d `rekey worker` processes, REKEY_CONCURRENCY=%d, REKEY_GRACE=10s (20s in Private Spaces)", benchWorkers, benchConcurrency),
			fmt.Sprintf("fleet: %d instances, 1 in 7 on V1, 1 in 6 in a Private Space; one more rotated interactively mid-wave", r.n),
			fmt.Sprintf("setup: %s, of which provisioning %d instances through the OAuth grant exchange %s",
				r.setupTook.Round(100*time.Millisecond), r.n, r.provisionTook.Round(100*time.Millisecond)),
			"wave: `rekey rotate --all --queue bulk` with the bulk queue paused, then unpaused; it printed:",
			"  " + r.cliOutput,
		},
	}
	r.timing(rep)
	r.heroku(rep)
	r.costs(rep)
	return rep
}

func (r *fleetRun) timing(rep *bench.Report) {
	makespan := r.lastPush.Sub(r.start)
	// The wave needs a push per instance and a read-back per V1 push.
	needed := r.n + r.v1
	ideal := time.Duration(float64(needed) / benchPerSecond * float64(time.Second))
	ratio := makespan.Seconds() / ideal.Seconds()
	rep.Add(bench.Row{Metric: "makespan (first enqueue -> last push)", Value: fmt.Sprintf("%.1fs", makespan.Seconds()),
		Target: "", Comment: fmt.Sprintf("ideal (%d + %d V1 read-backs) / %.1f per s = %.1fs", r.n, r.v1, benchPerSecond, ideal.Seconds())})
	burst := benchPerHour/360 - 2 // the limiter's default burst less the interactive reserve
	tight := time.Duration(float64(needed-burst) / benchPerSecond * float64(time.Second))
	rep.Add(bench.Row{Metric: "  makespan / ideal", Value: fmt.Sprintf("%.3f", ratio), Target: "<= 1.05",
		Verdict: bench.Check(ratio <= 1.05), Comment: fmt.Sprintf("the limiter's burst of %d background calls lets a run beat it", burst)})
	rep.Add(bench.Row{Metric: "  makespan / ideal after the burst", Value: fmt.Sprintf("%.3f", makespan.Seconds()/tight.Seconds()),
		Comment: fmt.Sprintf("(%d - %d) / %.1f per s = %.1fs: budget left unused", needed, burst, benchPerSecond, tight.Seconds())})
	ahead := bench.CountAfter(bench.ConfigCalls(r.h.Fake()), r.interactiveAt, bench.InSet(r.waveIDs))
	rep.Add(bench.Row{Metric: "interactive rotation mid-wave -> Heroku", Value: r.interactive.Round(time.Millisecond).String(),
		Target: "< 2s", Verdict: bench.Check(r.interactive < 2*time.Second),
		Comment: fmt.Sprintf("overtook %d queued bulk rotations", ahead)})
	ratioEnq := r.enqueueRate / r.rawRate
	rep.Add(bench.Row{Metric: "enqueue, `rekey rotate --all`", Value: fmt.Sprintf("%.0f/s", r.enqueueRate),
		Comment: "the built binary, while the bulk queue is paused (see above)"})
	rep.Add(bench.Row{Metric: fmt.Sprintf("enqueue, raw asynq (%d goroutines)", rawEnqueuers), Value: fmt.Sprintf("%.0f/s", r.rawRate)})
	rep.Add(bench.Row{Metric: "  rotate --all / raw", Value: fmt.Sprintf("%.2f", ratioEnq), Target: ">= 0.5", Verdict: bench.Check(ratioEnq >= 0.5)})
	rep.Add(bench.Row{Metric: "revocations after unpausing", Value: r.revokeTook.Round(100 * time.Millisecond).String(),
		Comment: fmt.Sprintf("%d old credentials revoked, %d invariant violations", r.batch.Succeeded+1, len(r.h.Sandbox.Checker.Violations()))})
}

func (r *fleetRun) heroku(rep *bench.Report) {
	st := r.h.Fake().Stats()
	push := st.Calls[herokufake.CallKey{Endpoint: herokufake.PatchConfig, Status: 200}] + st.Calls[herokufake.CallKey{Endpoint: herokufake.V1Put, Status: 200}]
	calls := len(r.h.Fake().Calls(bench.BudgetEndpoints...))
	rotations := r.batch.Succeeded + 1
	// Each rotation needs its push, and a V1 one the read-back of it.
	perRotation := float64(calls) / float64(rotations+int64(r.v1))
	rep.Add(bench.Row{Metric: "rotations succeeded / failed", Value: fmt.Sprintf("%d / %d", rotations, r.batch.Failed)})
	rep.Add(bench.Row{Metric: "429s received", Value: fmt.Sprint(st.RateLimited), Target: "0", Verdict: bench.Check(st.RateLimited == 0)})
	rep.Add(bench.Row{Metric: "Heroku calls / calls needed", Value: fmt.Sprintf("%.4f", perRotation), Target: "<= 1.01",
		Verdict: bench.Check(perRotation <= 1.01), Comment: fmt.Sprintf("%d patch_config + v1_put + v1_get calls, %d pushes accepted; "+
			"needed: a push per rotation, a read-back per V1 push (%d)", calls, push, r.v1)})
	rep.Add(bench.Row{Metric: "most calls in any 1s / 60s", Value: fmt.Sprintf("%d / %d", r.h.Fake().MaxInWindow(time.Second, bench.BudgetEndpoints...),
		r.h.Fake().MaxInWindow(time.Minute, bench.BudgetEndpoints...)),
		Comment: fmt.Sprintf("budget %.0f / %.0f (rate x window + burst %d)", bench.Budget(benchPerSecond, benchPerHour/360, time.Second),
			bench.Budget(benchPerSecond, benchPerHour/360, time.Minute), benchPerHour/360)})
}

func (r *fleetRun) costs(rep *bench.Report) {
	rotations := float64(r.batch.Succeeded + 1)
	rep.Add(bench.Row{Metric: "Redis commands per rotation", Value: fmt.Sprintf("%.1f", float64(r.commands)/rotations),
		Comment: "INFO commandstats over the run (calls inside Lua scripts count), revoke and idle polling included"})
	rep.Add(bench.Row{Metric: "  most run", Value: "", Comment: topCommands(r.byCommand, rotations, 8)})
	perRevoke := float64(r.memory1-r.memory0) / float64(max(r.waitingRevokes, 1))
	rep.Add(bench.Row{Metric: "Redis memory per waiting revoke", Value: fmt.Sprintf("%.0f B", perRevoke),
		Comment: fmt.Sprintf("used_memory growth over the wave / %d waiting revoke tasks: all state a rotation leaves", r.waitingRevokes)})
	rep.Add(bench.Row{Metric: "  of which the revoke task", Value: fmt.Sprintf("%.0f B", r.revokeTaskBytes),
		Comment: "mean MEMORY USAGE of its asynq task hash"})
	perK := r.usage.CPU.Seconds() / (rotations / 1000)
	rep.Add(bench.Row{Metric: "worker CPU per 1,000 rotations", Value: fmt.Sprintf("%.2fs", perK),
		Comment: fmt.Sprintf("user+sys of %d workers: %.1fs; largest RSS %d MiB", benchWorkers, r.usage.CPU.Seconds(), r.usage.MaxRSS>>20)})
}

// topCommands lists the n commands run most, per rotation.
func topCommands(counts map[string]int64, rotations float64, n int) string {
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return counts[names[i]] > counts[names[j]] })
	var parts []string
	for _, name := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.1f", name, float64(counts[name])/rotations))
	}
	return strings.Join(parts, ", ")
}
