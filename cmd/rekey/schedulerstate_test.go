package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/redisclock"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/store"
)

// statusJSON runs `rekey scheduler status --json` and decodes it.
func (g *schedulerRig) statusJSON(t *testing.T) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(g.run(t, "status", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Once the only clock process stops cleanly (SIGTERM, heroku ps:scale
// clock=0) nothing enqueues scheduled rotations, and status says so: no
// clock process is running, state "stopped" in --json, rather than
// "running" with its next sweep unknown for ever.
func TestSchedulerStatusSaysStoppedOnceTheLastClockStops(t *testing.T) {
	t.Parallel()
	g := newSchedulerRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	var errOut lockedBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &errOut, stderr: &errOut}
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, "scheduler", "--interval", "1m") }()
	waitFor(t, func() bool { last, _ := g.st.LastSweep(context.Background()); return !last.At.IsZero() })
	wantLines(t, g.run(t, "status"), "state:              running; last sweep ")
	if got := g.statusJSON(t); got["state"] != "running" || got["clocks_running"] != 1.0 {
		t.Errorf("while the clock runs: state %v, clocks_running %v; want running, 1", got["state"], got["clocks_running"])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("rekey scheduler: %v\n%s", err, errOut.String())
	}

	out := g.run(t, "status")
	t.Logf("rekey scheduler status:\n%s", out)
	wantLines(t, out, "state:              no clock process is running (last sweep 20",
		"next sweep:         none: no clock process is running")
	got := g.statusJSON(t)
	if got["state"] != "stopped" || got["clocks_running"] != 0.0 || got["last_sweep_at"] == nil {
		t.Errorf("after the clock stopped: state %v, clocks_running %v, last_sweep_at %v; want stopped, 0, its time",
			got["state"], got["clocks_running"], got["last_sweep_at"])
	}
}

// A clock whose every sweep fails part-way is failing, not running:
// status names when the failures began, their class and the last good
// sweep, and --json carries them beside the fields it had.
func TestSchedulerStatusSaysFailingSinceTheFirstFailedSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newSchedulerRig(t)
	if _, err := g.st.SetSchedulePolicy(ctx, store.SchedulePolicy{Period: time.Hour, QuarantineAfter: 1}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	good, first := now.Add(-3*time.Minute), now.Add(-2*time.Minute)
	if err := g.st.ClockAlive(ctx, "clock-1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	records := []store.SweepRecord{
		{At: good, Next: good.Add(time.Minute), Outcome: "swept", Enqueued: 3},
		{At: first, Next: first.Add(time.Minute), Outcome: "failed", Error: "due_index: redis_error"},
		{At: now.Add(-time.Minute), Next: now, Outcome: "failed", Error: "due_index: redis_error"},
	}
	for _, r := range records {
		if err := g.st.RecordSweep(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	out := g.run(t, "status")
	t.Logf("rekey scheduler status:\n%s", out)
	wantLines(t, out, "state:              failing since "+first.Format(time.RFC3339)+": due_index: redis_error; "+
		"last good sweep "+good.Format(time.RFC3339))
	got := g.statusJSON(t)
	want := map[string]any{"state": "failing", "last_sweep_outcome": "failed", "last_sweep_error": "due_index: redis_error",
		"failing_since": first.Format(time.RFC3339), "last_good_sweep_at": good.Format(time.RFC3339),
		"last_sweep_at": now.Add(-time.Minute).Format(time.RFC3339), "clocks_running": 1.0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("--json %s = %v, want %v", k, got[k], v)
		}
	}
}

// A clock whose REKEY_ROTATION_PERIOD differs from the published one
// enqueues nothing; status says "held" in words and in --json alike,
// rather than "running" in --json while the text says held.
func TestSchedulerStatusSaysHeldWhileAClockHasAnotherPeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newSchedulerRig(t)
	if _, err := g.st.SetSchedulePolicy(ctx, store.SchedulePolicy{Period: time.Hour, QuarantineAfter: 1}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := g.st.ClockAlive(ctx, "clock-1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := g.st.RecordSweep(ctx, store.SweepRecord{At: now.Add(-10 * time.Second), Next: now.Add(50 * time.Second),
		Outcome: scheduler.PeriodMismatch}); err != nil {
		t.Fatal(err)
	}
	out := g.run(t, "status")
	wantLines(t, out, "state:              held: a clock runs with a REKEY_ROTATION_PERIOD other than the published 1h")
	if got := g.statusJSON(t); got["state"] != "held" || got["last_sweep_outcome"] != scheduler.PeriodMismatch {
		t.Errorf("--json state %v, last_sweep_outcome %v; want held, %s", got["state"], got["last_sweep_outcome"],
			scheduler.PeriodMismatch)
	}
}

// `rekey scheduler status` judges the clock processes and the next sweep
// on Redis's clock, as the clocks write them, not on the machine's it runs
// on: a laptop five minutes ahead must not report a running clock stopped
// and its next sweep overdue, nor one five minutes behind a sweep three
// minutes overdue as on time. The machine's clock is the test's own; the
// skew is played by Redis's TIME, read through skewedTime.
func TestSchedulerStatusJudgesOnRedisClockOnASkewedMachine(t *testing.T) {
	for _, tc := range []struct {
		name      string
		skew      time.Duration // the machine's clock against Redis's
		next      time.Duration // the planned sweep against Redis's now
		nextSweep string
	}{
		{"machine five minutes ahead, sweep on time", 5 * time.Minute, 50 * time.Second, "next sweep:         20"},
		{"machine five minutes behind, sweep three minutes late", -5 * time.Minute, -3 * time.Minute,
			"next sweep:         overdue since "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			g := newSchedulerRig(t)
			if _, err := g.st.SetSchedulePolicy(ctx, store.SchedulePolicy{Period: time.Hour, QuarantineAfter: 1}); err != nil {
				t.Fatal(err)
			}
			var out, errOut lockedBuffer
			env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
				stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}
			cfg, err := loadConfig(env)
			if err != nil {
				t.Fatal(err)
			}
			a, err := newApp(cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if a.clock, err = redisclock.New(redisclock.Params{Redis: skewedTime{a.rdb, -tc.skew}}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.clock.Measure(ctx); err != nil {
				t.Fatal(err)
			}
			// A clock process that runs says so on Redis's clock.
			now := time.Now().Add(-tc.skew)
			if err := g.st.ClockAlive(ctx, "clock-1", now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := g.st.RecordSweep(ctx, store.SweepRecord{At: now.Add(tc.next - time.Minute), Next: now.Add(tc.next),
				Outcome: "swept"}); err != nil {
				t.Fatal(err)
			}
			if err := schedulerStatus(ctx, env, a, false); err != nil {
				t.Fatal(err)
			}
			t.Logf("rekey scheduler status:\n%s", out.String())
			wantLines(t, out.String(), "state:              running; last sweep ", tc.nextSweep)
			out.Reset()
			if err := schedulerStatus(ctx, env, a, true); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
				t.Fatal(err)
			}
			if got["state"] != "running" || got["clocks_running"] != 1.0 {
				t.Errorf("--json state %v, clocks_running %v; want running, 1", got["state"], got["clocks_running"])
			}
		})
	}
}

// skewedTime answers TIME as Redis would with its clock moved by by.
type skewedTime struct {
	redisclock.Source
	by time.Duration
}

func (s skewedTime) Time(ctx context.Context) *redis.TimeCmd {
	at, err := s.Source.Time(ctx).Result()
	return redis.NewTimeCmdResult(at.Add(s.by), err)
}
