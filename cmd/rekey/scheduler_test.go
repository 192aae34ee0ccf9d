package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/testbuf"
)

// lockedBuffer is a log sink the test's goroutines share.
type lockedBuffer = testbuf.Buffer

// schedulerRig is a Redis of its own, a store on it (its clock movable),
// and the environment the commands read.
type schedulerRig struct {
	r    *redistest.Redis
	st   *store.Store
	vars map[string]string
	ago  time.Duration // how far behind real time the rig's store clock runs
}

func newSchedulerRig(t *testing.T) *schedulerRig {
	t.Helper()
	key := bytes.Repeat([]byte{9}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	g := &schedulerRig{r: redistest.New(t)}
	g.st = store.New(g.r.Client, sealer, store.WithClock(func() time.Time { return time.Now().Add(-g.ago) }))
	g.vars = map[string]string{"REDIS_URL": g.r.URL, "REKEY_ENCRYPTION_KEYS": base64.StdEncoding.EncodeToString(key),
		"REKEY_ROTATION_PERIOD": "1h", "REKEY_HEROKU_RATE": "4000", "REKEY_MAINTENANCE_WINDOW": "02-05",
		"REKEY_QUARANTINE_AFTER": "1", "REKEY_LOG_LEVEL": "info"}
	return g
}

// run runs `rekey scheduler args...` and returns its standard output.
func (g *schedulerRig) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := g.runErr(args...)
	if err != nil {
		t.Fatalf("rekey scheduler %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// runBoth runs `rekey scheduler args...` and returns its stdout and stderr.
func (g *schedulerRig) runBoth(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := g.exec(args...)
	if err != nil {
		t.Fatalf("rekey scheduler %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout, stderr
}

// A pause or a resume on a Redis database no rekey process announces
// itself on (REDIS_URL naming the wrong one) says so on stderr: the fleet
// goes on as before. With a process announced, it says nothing more.
func TestPauseOnADatabaseNoProcessReadsSaysSo(t *testing.T) {
	t.Parallel()
	g := newSchedulerRig(t)
	for _, cmd := range []string{"pause", "resume"} {
		out, errOut := g.runBoth(t, cmd)
		if !strings.Contains(out, "scheduler") || !strings.Contains(errOut, "no running rekey process announces itself on this Redis") ||
			!strings.Contains(errOut, "check that REDIS_URL names its database") {
			t.Errorf("rekey scheduler %s on a database no process reads: stdout %q, stderr %q; want the warning", cmd, out, errOut)
		}
	}
	if err := g.st.AnnounceSharedSettings(context.Background(), "clock.1", "REKEY_HEROKU_RATE=4000", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"pause", "resume"} {
		if _, errOut := g.runBoth(t, cmd); errOut != "" {
			t.Errorf("rekey scheduler %s beside a running clock wrote on stderr: %q", cmd, errOut)
		}
	}
}

// runErr runs `rekey scheduler args...` and returns its stdout and error.
func (g *schedulerRig) runErr(args ...string) (string, error) {
	out, errOut, err := g.exec(args...)
	if err != nil {
		return out, fmt.Errorf("%w\n%s", err, errOut)
	}
	return out, nil
}

// exec runs `rekey scheduler args...`.
func (g *schedulerRig) exec(args ...string) (stdout, stderr string, err error) {
	var out, errOut lockedBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}
	err = runCommand(context.Background(), env, "scheduler", args...)
	return out.String(), errOut.String(), err
}

func (g *schedulerRig) register(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		err := g.st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
			ConfigVars: []string{"MYADDON_URL"}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
}

func TestSchedulerStatusPauseUnquarantineAndSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newSchedulerRig(t)
	if _, err := g.st.SetSchedulePolicy(ctx, store.SchedulePolicy{Period: time.Hour, QuarantineAfter: 1}); err != nil {
		t.Fatal(err)
	}
	g.register(t, "inst-a", "inst-b", "inst-c", "inst-q")
	if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-q", RotationID: "sch-1", Reason: store.ReasonScheduled}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.st.Fail(ctx, "inst-q", "sch-1", "mint:issuer_422", "issuer mint: status 422"); err != nil {
		t.Fatal(err)
	}

	out := g.run(t, "status")
	t.Logf("rekey scheduler status:\n%s", out)
	wantLines(t, out,
		"scheduled rotation: every 1h",
		"state:              never swept",
		"per-sweep cap:      64 rotations (REKEY_HEROKU_RATE 4000/h × 1m0s − interactive reserve 2)",
		"maintenance window: 02-05 UTC",
		"instances:          4 live, 3 scheduled",
		"due in next hour:   3",
		"due in next day:    3",
		"quarantined:        1: inst-q (rekey scheduler unquarantine ID... or --all; rekey instances show ID says why) "+
			"(after 1 failed rotations in a row, or one that cannot go on)")

	wantLines(t, g.run(t, "pause", "--by", "alice"), "scheduler paused")
	// A second pause keeps who paused first: the one to ask.
	wantLines(t, g.run(t, "pause", "--by", "bob"), "scheduler already paused (by alice since ", "left as it is")
	wantLines(t, g.run(t, "status"), "state:              paused since ", "by alice")
	wantLines(t, g.run(t, "resume"), "scheduler resumed")
	if strings.Contains(g.run(t, "status"), "paused") {
		t.Error("still paused after resume")
	}
	wantLines(t, g.run(t, "resume"), "the scheduler was not paused")

	// Its window set, a quarantined instance is still set aside: said.
	wantLines(t, g.run(t, "set", "inst-q", "--window", "default"),
		"inst-q: scheduled, window default (02-05 UTC, REKEY_MAINTENANCE_WINDOW), next scheduled rotation none",
		"inst-q is quarantined since ", "until 'rekey scheduler unquarantine inst-q'")
	wantLines(t, g.run(t, "unquarantine", "inst-q"), "inst-q is no longer quarantined; next scheduled rotation 20")
	wantLines(t, g.run(t, "unquarantine", "inst-q"), "inst-q was not quarantined")
	wantLines(t, g.run(t, "set", "inst-a", "--opt-out"),
		"inst-a: opted out, window default (02-05 UTC, REKEY_MAINTENANCE_WINDOW), next scheduled rotation none")
	wantLines(t, g.run(t, "set", "--window", "22-04", "inst-b"), "inst-b: scheduled, window 22-04 UTC")
	// inst-a left the schedule, inst-q came back at its first slot.
	wantLines(t, g.run(t, "status"), "instances:          4 live, 3 scheduled", "due in next hour:   3", "quarantined:        0 ")
	if in, _ := g.st.Instance(ctx, "inst-a"); !in.ScheduleOptOut {
		t.Errorf("inst-a not opted out: %+v", in)
	}
}

// Quarantined instances come back by the name, several at once, or all
// of them (--all): a worker run with the wrong keys may have set many
// aside, more than status lists.
func TestSchedulerUnquarantineSeveralOrAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newSchedulerRig(t)
	ids := make([]string, 0, 12)
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("inst-%02d", i))
	}
	g.register(t, ids...)
	for _, id := range ids {
		if _, err := g.st.Quarantine(ctx, id, "a stored secret of the instance cannot be opened"); err != nil {
			t.Fatal(err)
		}
	}
	// A mistyped id among several changes nothing, and the error names each.
	out, err := g.runErr("unquarantine", "inst-00", "inst-typo", "inst-01", "inst-typo2")
	if err == nil || !strings.Contains(err.Error(), `not registered: "inst-typo", "inst-typo2"; nothing was changed`) || out != "" {
		t.Errorf("unquarantine with two unknown ids: got %q, %v; want nothing done and both named", out, err)
	}
	wantLines(t, g.run(t, "status"), "quarantined:        12: ")
	wantLines(t, g.run(t, "unquarantine", "inst-00", "inst-01"), "inst-00 is no longer quarantined", "inst-01 is no longer quarantined")
	wantLines(t, g.run(t, "status"), "quarantined:        10: inst-02, inst-03, inst-04, inst-05, inst-06, ...")
	// Stale entries, sorted first, do not stop the walk.
	for i := range 600 {
		if err := g.st.Redis().ZAdd(ctx, "rekey:quarantined", redis.Z{Score: 0, Member: fmt.Sprintf("gone-%03d", i)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wantLines(t, g.run(t, "unquarantine", "--all"), "10 instances no longer quarantined")
	wantLines(t, g.run(t, "status"), "quarantined:        0 ")
	if _, n, err := g.st.Quarantined(ctx, 1); err != nil || n != 0 {
		t.Errorf("after --all: %d quarantined (%v)", n, err)
	}
}

func TestSchedulerRunEnqueuesDueOnTheBulkQueue(t *testing.T) {
	t.Parallel()
	g := newSchedulerRig(t)
	delete(g.vars, "REKEY_MAINTENANCE_WINDOW")
	g.ago = 3 * time.Hour // registered long ago: due at the first sweep
	g.register(t, "old-1", "old-2")
	g.ago = 0

	ctx, cancel := context.WithCancel(context.Background())
	var errOut lockedBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &errOut, stderr: &errOut}
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, "scheduler", "--interval", "1m") }()
	waitFor(t, func() bool { last, _ := g.st.LastSweep(context.Background()); return !last.At.IsZero() })
	wantLines(t, g.run(t, "status"), "state:              running; last sweep ", "enqueued 2",
		"in flight:          2 scheduled rotations enqueued, not finished")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("rekey scheduler: %v\n%s", err, errOut.String())
	}
	// Scheduled rotations are paced: held for the feeder (internal/pacing).
	if n, err := pacing.Held(context.Background(), g.r.Client); err != nil || n != 2 {
		t.Errorf("%d rotations held for the feeder (%v), want 2", n, err)
	}
	wantLines(t, errOut.String(), "schedule_indexed", "scheduled_sweep")
}

func TestSchedulerOffIdlesAndSaysSo(t *testing.T) {
	t.Parallel()
	g := newSchedulerRig(t)
	g.vars["REKEY_ROTATION_PERIOD"] = "0"
	ctx, cancel := context.WithCancel(context.Background())
	var errOut lockedBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &errOut, stderr: &errOut}
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, "scheduler") }()
	waitFor(t, func() bool { return strings.Contains(errOut.String(), "scheduled_rotation_off") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantLines(t, g.run(t, "status"), "scheduled rotation: off (REKEY_ROTATION_PERIOD=0)")
}

// waitFor polls cond until it holds, failing t after five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// `rekey scheduler` typed in a shell whose environment has another
// REKEY_ROTATION_PERIOD than the running clock's refuses to start, naming
// both periods and --set-period, and leaves the published period alone;
// with --set-period it publishes its own.
func TestSchedulerWithAnotherPeriodRefusesUnlessSetPeriod(t *testing.T) {
	ctx := context.Background()
	g := newSchedulerRig(t)
	if _, err := g.st.PublishSchedulePolicy(ctx, store.SchedulePolicy{Period: 2160 * time.Hour, QuarantineAfter: 3},
		time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	// The running clock swept a moment ago and plans its next sweep.
	if err := g.st.RecordSweep(ctx, store.SweepRecord{At: time.Now(), Next: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	g.register(t, "inst-a")
	var errOut lockedBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &errOut, stderr: &errOut}
	err := runCommand(ctx, env, "scheduler")
	if err == nil {
		t.Fatal("rekey scheduler with REKEY_ROTATION_PERIOD=1h started while 2160h was published")
	}
	for _, want := range []string{"2160h (90 days)", "is 1h;", "rekey scheduler --set-period"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if !strings.HasSuffix(err.Error(), "REKEY_ROTATION_PERIOD=2160h") {
		t.Errorf("the refusal does not end with the setting as it is set: %v", err)
	}
	if p, _ := g.st.SchedulePolicy(ctx); p.Period != 2160*time.Hour {
		t.Fatalf("published period %s after the refusal, want 2160h", p.Period)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runCommand(runCtx, env, "scheduler", "--set-period") }()
	waitFor(t, func() bool { p, _ := g.st.SchedulePolicy(ctx); return p.Period == time.Hour })
	waitFor(t, func() bool { return strings.Contains(errOut.String(), "schedule_period_set") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("rekey scheduler --set-period: %v\n%s", err, errOut.String())
	}
}

// A clock announces its maintenance window with its settings, and a web or
// worker process does not (without the setting, it would read as
// disagreeing); the operator commands run without REKEY_MAINTENANCE_WINDOW
// quote the next scheduled rotation in the window the clock keeps to.
func TestNextRotationTimesKeepToTheClocksWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newSchedulerRig(t)
	cfg := &config.Config{HerokuRate: 4000, MaintenanceWindow: "02-05"}
	clock := (&app{cfg: cfg, schedules: true}).announcedSettings()
	if !strings.Contains(clock, " REKEY_MAINTENANCE_WINDOW=02-05") {
		t.Errorf("a clock announces %q, want its window in it", clock)
	}
	if worker := (&app{cfg: cfg}).announcedSettings(); strings.Contains(worker, "REKEY_MAINTENANCE_WINDOW") {
		t.Errorf("a worker announces %q, want no window", worker)
	}
	if _, err := g.st.SetSchedulePolicy(ctx, store.SchedulePolicy{Period: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	g.register(t, "inst-a")
	delete(g.vars, "REKEY_MAINTENANCE_WINDOW") // the operator's shell
	if err := g.st.AnnounceSharedSettings(ctx, "clock.1", clock, time.Minute); err != nil {
		t.Fatal(err)
	}
	out := g.run(t, "set", "inst-a", "--opt-in")
	wantLines(t, out, "inst-a: scheduled, window default (02-05 UTC, REKEY_MAINTENANCE_WINDOW), next scheduled rotation ")
	at, err := time.Parse(time.RFC3339, strings.TrimSpace(out[strings.LastIndex(out, " ")+1:]))
	if err != nil || at.UTC().Hour() < 2 || at.UTC().Hour() >= 5 {
		t.Errorf("next scheduled rotation %v (%v), want it in the clock's window 02-05 UTC:\n%s", at, err, out)
	}
}

// --set-period takes no value: the period it publishes is the process's
// REKEY_ROTATION_PERIOD. Given one (`--set-period 2160h`, `--set-period=90d`),
// the command is a usage error that says so and how to set the period,
// where it was an unknown command "2160h" or strconv.ParseBool's error, and
// the published period is left alone.
func TestSetPeriodGivenAValueSaysHowToSetThePeriod(t *testing.T) {
	ctx := context.Background()
	g := newSchedulerRig(t)
	if _, err := g.st.PublishSchedulePolicy(ctx, store.SchedulePolicy{Period: 2160 * time.Hour, QuarantineAfter: 1},
		time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--set-period", "720h"}, {"--set-period=90d"}, {"--set-period", "90"}} {
		_, err := g.runErr(args...)
		if !isUsage(err) {
			t.Fatalf("rekey scheduler %s = %v, want a usage error", strings.Join(args, " "), err)
		}
		for _, want := range []string{"--set-period takes no value", "REKEY_ROTATION_PERIOD=", "rekey scheduler --set-period"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("rekey scheduler %s: the refusal does not say %q: %v", strings.Join(args, " "), want, err)
			}
		}
	}
	// A count of days is set as its hours, not as the example's 90 days.
	if _, err := g.runErr("--set-period=30d"); err == nil || !strings.Contains(err.Error(), "REKEY_ROTATION_PERIOD=720h rekey") {
		t.Errorf("rekey scheduler --set-period=30d = %v, want the period set as 720h", err)
	}
	if p, _ := g.st.SchedulePolicy(ctx); p.Period != 2160*time.Hour {
		t.Fatalf("published period %s after the refusals, want 2160h", p.Period)
	}
}

// TestSchedulerUnquarantineNamesWhereQuarantinedAreListed: an id that is
// not registered is refused naming the command that lists the quarantined
// instances, and so is a registered one that was not quarantined: an
// operator who mistyped an id or took it from an old note learns where
// to find the right one.
func TestSchedulerUnquarantineNamesWhereQuarantinedAreListed(t *testing.T) {
	t.Parallel()
	g := newSchedulerRig(t)
	g.register(t, "inst-a")
	const where = "'rekey scheduler status' lists the quarantined instances"
	_, err := g.runErr("unquarantine", "inst-x")
	if err == nil || !strings.Contains(err.Error(), `not registered: "inst-x"; nothing was changed`) ||
		!strings.Contains(err.Error(), where) {
		t.Errorf("unquarantine of an unknown id: %v; want the refusal naming %q", err, where)
	}
	wantLines(t, g.run(t, "unquarantine", "inst-a"), "inst-a was not quarantined ("+where)
}
