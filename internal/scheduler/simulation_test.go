package scheduler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/scheduler"
)

// The simulation scales the period down to one hour of simulated time and
// sweeps every simulated minute, driving Sweep directly. Rotations run
// through the real rotate handler a second after each sweep.
const (
	simPeriod   = time.Hour
	simInterval = time.Minute
	simPerHour  = 15_000 // 250 calls a minute
	simReserve  = 2
)

var simStart = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func simParams() scheduler.Params {
	return scheduler.Params{Period: simPeriod, QuarantineAfter: 3, PerHour: simPerHour, Reserve: simReserve,
		Interval: simInterval}
}

// registration is when the simulation registers an instance.
type registration struct {
	id string
	at time.Time
}

// fleetOf returns n instances: the first half registered at start, the
// same instant, the others at random moments of the first period.
func fleetOf(n int) []registration {
	rng := rand.New(rand.NewPCG(1, 2))
	regs := make([]registration, n)
	for i := range n {
		regs[i] = registration{id: fmt.Sprintf("same-%05d", i), at: simStart}
		if i >= n/2 {
			regs[i] = registration{id: fmt.Sprintf("late-%05d", i), at: simStart.Add(time.Duration(rng.Int64N(int64(simPeriod))))}
		}
	}
	slices.SortStableFunc(regs, func(a, b registration) int { return a.at.Compare(b.at) })
	return regs
}

// simulate runs sweeps minute by minute over periods periods with every
// scheduler in scheds sweeping at once, registering the fleet as it goes.
// Rotations run a second after the sweeps; with racing set, a worker also
// runs during the sweeps, so promotions race with sweeps taking entries.
// It returns how many rotations were enqueued in each simulated minute,
// and the sweeps' outcomes added up.
func simulate(t *testing.T, w *world, regs []registration, periods int, racing bool, scheds ...*scheduler.Scheduler) ([]int, map[string]int) {
	t.Helper()
	ctx := context.Background()
	if err := scheds[0].Start(ctx); err != nil {
		t.Fatal(err)
	}
	perMinute := make([]int, 0, periods*60)
	outcomes := map[string]int{}
	var mu sync.Mutex
	for m := range periods * int(simPeriod/simInterval) {
		now := simStart.Add(time.Duration(m) * simInterval)
		for len(regs) > 0 && !regs[0].at.After(now) {
			w.set(regs[0].at)
			w.register(t, regs[0].id)
			regs = regs[1:]
		}
		w.set(now)
		before := w.queue.count()
		var wg sync.WaitGroup
		if racing {
			wg.Go(func() { w.work(t, 4) })
		}
		for _, s := range scheds {
			wg.Go(func() {
				res, err := s.Sweep(ctx, now)
				if err != nil {
					t.Errorf("sweep at %s: %v", now, err)
				}
				mu.Lock()
				outcomes[res.Outcome]++
				outcomes["skipped"] += res.Skipped
				outcomes["joined"] += res.Joined
				mu.Unlock()
			})
		}
		wg.Wait()
		perMinute = append(perMinute, w.queue.count()-before)
		w.advance(time.Second)
		w.work(t, 16)
	}
	return perMinute, outcomes
}

// audit checks every instance's rotations: the first within one period
// (and a sweep) of registration, each next one period (± a sweep) after
// the one before, none closer than half a period. It returns the number
// of rotations and of double rotations.
func audit(t *testing.T, w *world, regs []registration, end time.Time) (rotations, doubles int) {
	t.Helper()
	slack := simInterval + time.Second
	for _, r := range regs {
		at := w.heroku.times(r.id)
		rotations += len(at)
		if len(at) == 0 || at[0].Sub(r.at) > simPeriod+slack || at[0].Before(r.at) {
			t.Errorf("%s registered %s: first rotation %v, want within one period", r.id, r.at.Format(time.TimeOnly), at)
			continue
		}
		for i := 1; i < len(at); i++ {
			gap := at[i].Sub(at[i-1])
			if gap < simPeriod/2 {
				doubles++
			}
			if gap < simPeriod-slack || gap > simPeriod+slack {
				t.Errorf("%s: rotations %s apart, want %s ± %s", r.id, gap, simPeriod, slack)
			}
		}
		if last := at[len(at)-1]; end.Sub(last) > simPeriod+slack {
			t.Errorf("%s: last rotated %s, more than a period before the end", r.id, last.Format(time.TimeOnly))
		}
	}
	return rotations, doubles
}

func TestSimulationTenThousandInstancesTwoSchedulers(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation of 10,000 instances over four periods")
	}
	t.Parallel()
	const n, periods = 10_000, 3
	w := newWorld(t, simStart)
	a, b := w.scheduler(t, simParams()), w.scheduler(t, simParams())
	regs := fleetOf(n)
	started := time.Now()
	perMinute, outcomes := simulate(t, w, slices.Clone(regs), periods, false, a, b)
	end := simStart.Add(time.Duration(len(perMinute)) * simInterval)
	rotations, doubles := audit(t, w, regs, end)

	busiest, total := slices.Max(perMinute), 0
	for _, c := range perMinute {
		total += c
	}
	t.Logf("%d instances (%d registered at the same instant), period %s, sweep every %s, %d sweeps by 2 schedulers in %s",
		n, n/2, simPeriod, simInterval, len(perMinute), time.Since(started).Round(time.Millisecond))
	t.Logf("cap %d a sweep (%d calls/h × %s − reserve %d); busiest minute %d, mean %.1f, rotations %d, double rotations %d",
		a.Cap(), simPerHour, simInterval, simReserve, busiest, float64(total)/float64(len(perMinute)), rotations, doubles)
	t.Logf("sweep outcomes %v; TaskID repeats refused %d", outcomes, w.queue.conflicts)
	t.Logf("first-period spread of the same-instant cohort: busiest minute %d of %d", sameInstantBusiest(w, regs), n/2)
	if busiest > a.Cap() {
		t.Errorf("busiest minute enqueued %d, over the cap of %d", busiest, a.Cap())
	}
	if doubles != 0 {
		t.Errorf("%d double rotations", doubles)
	}
	if rotations < n*(periods-1) {
		t.Errorf("%d rotations of %d instances over %d periods", rotations, n, periods)
	}
}

// sameInstantBusiest is the most first rotations of the instances
// registered at the start that fell in one minute.
func sameInstantBusiest(w *world, regs []registration) int {
	byMinute := map[int64]int{}
	for _, r := range regs {
		if at := w.heroku.times(r.id); r.at.Equal(simStart) && len(at) > 0 {
			byMinute[at[0].Unix()/60]++
		}
	}
	busiest := 0
	for _, c := range byMinute {
		busiest = max(busiest, c)
	}
	return busiest
}

func TestTwoSchedulersWithoutLockNeverDoubleRotate(t *testing.T) {
	t.Parallel()
	const n, periods = 2_000, 2
	w := newWorld(t, simStart)
	a, b := w.scheduler(t, simParams()), w.scheduler(t, simParams())
	scheduler.WithoutLock(a)
	scheduler.WithoutLock(b)
	regs := fleetOf(n)
	perMinute, outcomes := simulate(t, w, slices.Clone(regs), periods, true, a, b)
	rotations, doubles := audit(t, w, regs, simStart.Add(time.Duration(len(perMinute))*simInterval))
	t.Logf("without the lock: %d instances, %d sweeps each by 2 schedulers, rotations %d, double rotations %d, "+
		"entries taken by the other scheduler first %d, TaskID repeats refused %d, busiest minute %d (cap %d)",
		n, len(perMinute), rotations, doubles, outcomes["skipped"], w.queue.conflicts, slices.Max(perMinute), a.Cap())
	if doubles != 0 {
		t.Errorf("%d double rotations", doubles)
	}
}
