package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/store"
)

const schedulerUsage = `usage: rekey scheduler [--interval 1m]       run the clock (Procfile: clock)
       rekey scheduler status                   next sweep, what is due, quarantined instances, the breaker
       rekey scheduler pause [--by NAME]        stop every scheduler enqueueing (in-flight rotations go on)
       rekey scheduler resume
       rekey scheduler unquarantine ID          let the scheduler try a quarantined instance again
       rekey scheduler set ID [--opt-out|--opt-in] [--window HH-HH|default]`

// runScheduler runs the clock, or one of its operator subcommands.
func runScheduler(ctx context.Context, env *environ, args []string) error {
	sub := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	run, ok := map[string]func(context.Context, *environ, *app, []string) error{
		"run": runClock, "status": schedulerStatus, "pause": pauseScheduler, "resume": resumeScheduler,
		"unquarantine": unquarantineInstance, "set": setSchedule,
	}[sub]
	if !ok || len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(env.stderr, schedulerUsage)
		return errUsage
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if err := cfg.RequireProducer(); err != nil {
		return err
	}
	open := openApp
	if sub == "run" {
		open = openService // the clock outlives Redis outages
	}
	a, err := open(ctx, cfg, newLogger(env, cfg, "scheduler", sub != "run"))
	if err != nil {
		return err
	}
	defer a.Close()
	return run(ctx, env, a, args)
}

// runClock sweeps until ctx is done (SIGTERM).
func runClock(ctx context.Context, env *environ, a *app, args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	interval := fs.Duration("interval", time.Minute, "time between sweeps")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *interval < time.Second {
		return errUsage
	}
	p, err := schedulerParams(a, *interval)
	if err != nil {
		return err
	}
	p.Logger = a.quietLog()
	s, err := scheduler.New(p)
	if err != nil {
		return err
	}
	a.checkSealedWhenUp(ctx)
	return a.untilDone(ctx, s.Run)
}

// schedulerParams builds the scheduler's parameters from the configuration.
func schedulerParams(a *app, interval time.Duration) (scheduler.Params, error) {
	window, err := globalWindow(a.cfg)
	if err != nil {
		return scheduler.Params{}, err
	}
	lim, err := a.limiter()
	if err != nil {
		return scheduler.Params{}, err
	}
	reserve := lim.Params().Reserve
	_ = lim.Close()
	return scheduler.Params{Store: a.store, Enqueuer: a.queue, Logger: a.log, Period: a.cfg.RotationPeriod,
		QuarantineAfter: a.cfg.QuarantineAfter, Window: window, PerHour: a.cfg.HerokuRate, Reserve: reserve,
		Interval: interval}, nil
}

func globalWindow(cfg *config.Config) (*store.Window, error) {
	if cfg.MaintenanceWindow == "" {
		return nil, nil
	}
	w, err := store.ParseWindow(cfg.MaintenanceWindow)
	if err != nil {
		return nil, fmt.Errorf("REKEY_MAINTENANCE_WINDOW: %w", err)
	}
	return &w, nil
}

func pauseScheduler(ctx context.Context, env *environ, a *app, args []string) error {
	fs := flag.NewFlagSet("scheduler pause", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	by := fs.String("by", "operator", "who pauses, for the status and the audit trail")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	if err := a.store.PauseSchedule(ctx, *by); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "scheduler paused: no scheduler enqueues rotations until 'rekey scheduler resume'")
	return nil
}

func resumeScheduler(ctx context.Context, env *environ, a *app, args []string) error {
	if len(args) > 0 {
		return errUsage
	}
	if err := a.store.ResumeSchedule(ctx); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "scheduler resumed")
	return nil
}

func unquarantineInstance(ctx context.Context, env *environ, a *app, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("name one instance id: %w", errUsage)
	}
	ok, err := a.store.Unquarantine(ctx, args[0], "operator (rekey scheduler unquarantine)")
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("instance %s is not registered", args[0])
	case err != nil:
		return err
	case !ok:
		fmt.Fprintf(env.stdout, "%s was not quarantined\n", args[0])
		return nil
	}
	in, err := a.store.Instance(ctx, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s is no longer quarantined; next scheduled rotation %s\n", args[0], timeOrNone(in.NextRotationAt))
	return nil
}

// setSchedule changes one instance's opt-out or maintenance window,
// leaving what the flags do not name as it was.
func setSchedule(ctx context.Context, env *environ, a *app, args []string) error {
	fs := flag.NewFlagSet("scheduler set", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	optOut := fs.Bool("opt-out", false, "take the instance out of scheduled rotation")
	optIn := fs.Bool("opt-in", false, "put the instance back into scheduled rotation")
	window := fs.String("window", "", "the instance's maintenance window, HH-HH in UTC, or 'default'")
	id, err := parseWithOneArg(fs, args)
	if err != nil || *optOut && *optIn {
		return errUsage
	}
	in, err := a.store.Instance(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("instance %s is not registered", id)
	} else if err != nil {
		return err
	}
	sc := store.Schedule{OptOut: (in.ScheduleOptOut || *optOut) && !*optIn, Window: in.Window}
	switch *window {
	case "":
	case "default":
		sc.Window = nil
	default:
		w, err := store.ParseWindow(*window)
		if err != nil {
			return fmt.Errorf("--window: %w", err)
		}
		sc.Window = &w
	}
	if err := a.store.SetSchedule(ctx, id, sc); err != nil {
		return err
	}
	if in, err = a.store.Instance(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: %s, window %s, next scheduled rotation %s\n", id,
		map[bool]string{true: "opted out", false: "scheduled"}[in.ScheduleOptOut], windowText(in.Window), timeOrNone(in.NextRotationAt))
	return nil
}

// parseWithOneArg parses flags that may come before or after the one
// positional argument, and returns that argument.
func parseWithOneArg(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		return "", errUsage
	}
	arg := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil || fs.NArg() > 0 {
		return "", errUsage
	}
	return arg, nil
}

func schedulerStatus(ctx context.Context, env *environ, a *app, args []string) error {
	if len(args) > 0 {
		return errUsage
	}
	st, err := readScheduleStatus(ctx, a, time.Now().UTC())
	if err != nil {
		return err
	}
	st.write(env.stdout)
	return writeHoldStatus(ctx, env.stdout, a.store, time.Now())
}

// scheduleStatus is what `rekey scheduler status` prints.
type scheduleStatus struct {
	now         time.Time
	policy      store.SchedulePolicy
	window      *store.Window
	pausedAt    time.Time
	pausedBy    string
	breaker     store.BreakerState
	last        store.SweepRecord
	cap         int
	capNote     string
	live        int64
	scheduled   int64
	dueNow      int64
	dueHour     int64
	dueDay      int64
	backlog     int64
	quarantined int64
	qIDs        []string
}

func readScheduleStatus(ctx context.Context, a *app, now time.Time) (scheduleStatus, error) {
	s := scheduleStatus{now: now}
	var err error
	if s.policy, err = a.store.SchedulePolicy(ctx); err != nil {
		return s, err
	}
	if !s.policy.Published {
		s.policy = store.SchedulePolicy{Period: a.cfg.RotationPeriod, QuarantineAfter: a.cfg.QuarantineAfter}
	}
	if s.window, err = globalWindow(a.cfg); err != nil {
		return s, err
	}
	if s.pausedAt, s.pausedBy, err = a.store.SchedulePaused(ctx); err != nil {
		return s, err
	}
	if s.breaker, err = a.store.BreakerState(ctx); err != nil {
		return s, err
	}
	if s.last, err = a.store.LastSweep(ctx); err != nil {
		return s, err
	}
	if err := s.readCap(a); err != nil {
		return s, err
	}
	return s, s.readCounts(ctx, a)
}

// readCap takes the cap the running scheduler used, or computes the one
// this configuration gives with the default interval.
func (s *scheduleStatus) readCap(a *app) error {
	if s.last.Cap > 0 {
		s.cap, s.capNote = s.last.Cap, "as of the last sweep"
		return nil
	}
	p, err := schedulerParams(a, time.Minute)
	if err != nil {
		return err
	}
	s.cap = scheduler.Cap(p.PerHour, p.Interval, p.Reserve)
	s.capNote = fmt.Sprintf("REKEY_HEROKU_RATE %d/h × 1m0s − interactive reserve %d", p.PerHour, p.Reserve)
	return nil
}

func (s *scheduleStatus) readCounts(ctx context.Context, a *app) error {
	var err error
	steps := []func(){
		func() { s.live, err = a.store.CountInstances(ctx) },
		func() { s.scheduled, err = a.store.CountScheduled(ctx) },
		func() { s.dueNow, err = a.store.CountDue(ctx, s.now) },
		func() { s.dueHour, err = a.store.CountDue(ctx, s.now.Add(time.Hour)) },
		func() { s.dueDay, err = a.store.CountDue(ctx, s.now.Add(24*time.Hour)) },
		func() { s.backlog, err = a.store.ScheduledBacklog(ctx, s.now.Add(-scheduler.Lease(s.policy.Period))) },
		func() { s.qIDs, s.quarantined, err = a.store.Quarantined(ctx, 5) },
	}
	for _, step := range steps {
		if step(); err != nil {
			return err
		}
	}
	return nil
}

func (s scheduleStatus) write(w io.Writer) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-19s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	if s.policy.Period == 0 {
		line("scheduled rotation", "off (REKEY_ROTATION_PERIOD=0): the scheduler idles")
	} else {
		line("scheduled rotation", "every %s", s.policy.Period)
	}
	line("state", "%s", s.state())
	line("breaker", "%s", breaker.Describe(s.breaker))
	line("next sweep", "%s", s.nextSweep())
	line("per-sweep cap", "%d rotations (%s)", s.cap, s.capNote)
	line("maintenance window", "%s", windowText(s.window))
	line("instances", "%d live, %d scheduled", s.live, s.scheduled)
	line("due now", "%d", s.dueNow)
	line("due in next hour", "%d", s.dueHour)
	line("due in next day", "%d", s.dueDay)
	line("in flight", "%d scheduled rotations enqueued, not finished", s.backlog)
	q := fmt.Sprintf("%d", s.quarantined)
	if len(s.qIDs) > 0 {
		q += ": " + strings.Join(s.qIDs, ", ")
		if s.quarantined > int64(len(s.qIDs)) {
			q += ", ..."
		}
		q += " (rekey scheduler unquarantine ID)"
	}
	line("quarantined", "%s (after %d failed scheduled rotations in a row)", q, s.policy.QuarantineAfter)
}

func (s scheduleStatus) state() string {
	if !s.pausedAt.IsZero() {
		return fmt.Sprintf("paused since %s by %s (rekey scheduler resume)", s.pausedAt.Format(time.RFC3339), s.pausedBy)
	}
	if s.breaker.Open() {
		return "held: the circuit breaker is open, nothing is enqueued (see below)"
	}
	if s.last.At.IsZero() {
		return "never swept: is the clock process (rekey scheduler) running?"
	}
	return fmt.Sprintf("running; last sweep %s enqueued %d, deferred %d", s.last.At.Format(time.RFC3339),
		s.last.Enqueued, s.last.Deferred)
}

func (s scheduleStatus) nextSweep() string {
	switch {
	case s.last.Next.IsZero():
		return "unknown"
	case s.now.Sub(s.last.Next) > 2*time.Minute:
		return fmt.Sprintf("overdue since %s: is the clock process (rekey scheduler) running?", s.last.Next.Format(time.RFC3339))
	}
	return s.last.Next.Format(time.RFC3339)
}

func timeOrNone(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}

func windowText(w *store.Window) string {
	if w == nil {
		return "any time"
	}
	return w.String() + " UTC"
}
