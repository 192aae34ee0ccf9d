package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/store"
)

func newSchedulerCmd(env *environ) *cobra.Command {
	var interval time.Duration
	var setPeriod bool
	c := &cobra.Command{
		Use:         "scheduler",
		Annotations: serves,
		Short:       "Run the clock (Procfile: clock); status, pause, resume, set, unquarantine",
		Long: `Alone, runs the clock until SIGTERM: every --interval it sweeps the instances whose scheduled
rotation is due (REKEY_ROTATION_PERIOD) and enqueues them on the bulk queue, within the budget and
the maintenance window. Exactly one clock is needed; two are safe. Its subcommands let an operator
see and steer scheduled rotation.

The rotation period is fleet-wide: the clock publishes it in Redis, where every process reads it. A
clock whose REKEY_ROTATION_PERIOD differs from the published one refuses to start and changes
nothing; --set-period makes it publish its own on purpose, which recomputes every instance's next
scheduled rotation (a clock still running with the old period then enqueues nothing until it
restarts with the new one). So is REKEY_QUARANTINE_AFTER, how many scheduled rotations failing in a
row set an instance aside: a clock with another limit refuses to start too.`,
		Example: `  rekey scheduler
  REKEY_ROTATION_PERIOD=720h rekey scheduler --set-period
  rekey scheduler status --json
  rekey scheduler pause --by alice
  rekey scheduler set inst-123 --window 22-04`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 && setPeriod && args[0] != "" && args[0][0] >= '0' && args[0][0] <= '9' {
				return setPeriodValueError(args[0]) // --set-period 2160h
			}
			if len(args) > 0 {
				return unknownSubcommand(c, args)
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if interval < time.Second {
				return usagef("--interval must be at least 1s")
			}
			return runClockCmd(c.Context(), env, interval, setPeriod)
		},
	}
	c.Flags().DurationVar(&interval, "interval", time.Minute, "time between sweeps")
	c.Flags().BoolVar(&setPeriod, "set-period", false,
		"publish REKEY_ROTATION_PERIOD and REKEY_QUARANTINE_AFTER as the fleet's even when another clock published others")
	c.AddCommand(newSchedulerStatusCmd(env), newSchedulerPauseCmd(env), newSchedulerResumeCmd(env),
		newSchedulerUnquarantineCmd(env), newSchedulerSetCmd(env))
	return c
}

// setPeriodValueError refuses a value given to --set-period, which takes
// none: the period it publishes is the process's REKEY_ROTATION_PERIOD. It
// says how to set that, with the value when it is a duration or a count of
// days, and else with 90 days.
func setPeriodValueError(v string) error {
	period, hint := v, ""
	if _, err := time.ParseDuration(v); err != nil {
		period, hint = "2160h", " ("+printable.DurationHint(v)+")"
		if days, err := strconv.Atoi(strings.TrimSuffix(v, "d")); err == nil && days > 0 && days <= 100000 && v != strconv.Itoa(days) {
			period = strconv.Itoa(days*24) + "h"
		}
	}
	return usagef("--set-period takes no value, got %q: it publishes this process's REKEY_ROTATION_PERIOD, so set the "+
		"period there: REKEY_ROTATION_PERIOD=%s rekey scheduler --set-period%s", v, period, hint)
}

func newSchedulerStatusCmd(env *environ) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Next sweep, what is due, quarantined instances, the breaker",
		Long: `Prints scheduled rotation's state: running, paused, held by the circuit breaker, failing (every
sweep fails part-way: since when, why, and the last good sweep) or stopped (no clock process runs); the next sweep
and its cap; how many instances are due now, in the next hour and day; how many scheduled rotations
are in flight; quarantined instances.`,
		Example: `  rekey scheduler status
  rekey scheduler status --json | jq .due_next_hour`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withProducer(c.Context(), env, "scheduler", func(a *app) error { return schedulerStatus(c.Context(), env, a, asJSON) })
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return c
}

func newSchedulerPauseCmd(env *environ) *cobra.Command {
	var by string
	c := &cobra.Command{
		Use:     "pause",
		Short:   "Stop every scheduler enqueueing (rotations in flight go on)",
		Long:    `Pauses scheduled rotation fleet-wide: every running scheduler honours it until 'rekey scheduler resume'.`,
		Example: `  rekey scheduler pause --by alice`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			name, err := operatorName(by)
			if err != nil {
				return err
			}
			return withProducer(c.Context(), env, "scheduler", func(a *app) error { return pauseScheduler(c.Context(), env, a, name) })
		},
	}
	c.Flags().StringVar(&by, "by", "operator", "who pauses, shown by 'rekey scheduler status' (no audit event is written)")
	return c
}

func newSchedulerResumeCmd(env *environ) *cobra.Command {
	return &cobra.Command{
		Use:     "resume",
		Short:   "Let the schedulers enqueue again after a pause",
		Long:    `Ends a 'rekey scheduler pause': the next sweep enqueues what is due.`,
		Example: `  rekey scheduler resume`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withProducer(c.Context(), env, "scheduler", func(a *app) error { return resumeScheduler(c.Context(), env, a) })
		},
	}
}

func newSchedulerUnquarantineCmd(env *environ) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "unquarantine ID... | --all",
		Short: "Let the scheduler try quarantined instances again",
		Long: `An instance whose rotations failed REKEY_QUARANTINE_AFTER times in a row, or that cannot be
rotated at all (its OAuth authorization revoked, a stored secret that cannot be opened), is set
aside; this puts the instances named, or every quarantined one (--all), back at their next slot.`,
		Example: `  rekey scheduler unquarantine inst-123
  rekey scheduler unquarantine --all`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usagef("takes instance IDs or --all, not both")
			case !all && len(args) == 0:
				return usagef("takes one or more instance IDs, or --all")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			for _, id := range args {
				if err := checkInstanceArg("rekey scheduler unquarantine", id); err != nil {
					return err
				}
			}
			return withProducer(c.Context(), env, "scheduler", func(a *app) error {
				if all {
					return unquarantineAll(c.Context(), env, a)
				}
				return unquarantineInstances(c.Context(), env, a, args)
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every quarantined instance")
	return c
}

func newSchedulerSetCmd(env *environ) *cobra.Command {
	var f scheduleFlags
	c := &cobra.Command{
		Use:   "set ID [--opt-out|--opt-in] [--window HH-HH|default]",
		Short: "Change one instance's opt-out or maintenance window",
		Long:  `Changes one instance's schedule, leaving what the flags do not name as it was.`,
		Example: `  rekey scheduler set inst-123 --opt-out
  rekey scheduler set inst-123 --opt-in --window 22-04
  rekey scheduler set inst-123 --window default`,
		Args: exactArgs(1, "one instance ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkInstanceArg("rekey scheduler set", args[0]); err != nil {
				return err
			}
			if f.optOut && f.optIn {
				return usagef("--opt-out and --opt-in contradict each other")
			}
			if c.Flags().Changed("window") && strings.TrimSpace(f.window) == "" {
				// A script's unset $WINDOW: taken for no --window, the rest
				// of the command went ahead and the window stayed as it was.
				return usagef("--window is empty (a variable left unset?): give HH-HH in UTC, or default for the fleet's window")
			}
			if !f.optOut && !f.optIn && f.window == "" {
				return usagef("name what to change: --opt-out, --opt-in or --window")
			}
			if f.window != "" && f.window != "default" {
				if _, err := store.ParseWindow(f.window); err != nil {
					return usagef("--window: %s", err)
				}
			}
			return withProducer(c.Context(), env, "scheduler", func(a *app) error { return setSchedule(c.Context(), env, a, args[0], f) })
		},
	}
	c.Flags().BoolVar(&f.optOut, "opt-out", false, "take the instance out of scheduled rotation")
	c.Flags().BoolVar(&f.optIn, "opt-in", false, "put the instance back into scheduled rotation")
	c.Flags().StringVar(&f.window, "window", "", "the instance's maintenance window, HH-HH in UTC, or 'default'")
	return c
}

// runClockCmd opens the clock's app, which outlives Redis outages
// (openService), and sweeps until ctx is done.
func runClockCmd(ctx context.Context, env *environ, interval time.Duration, setPeriod bool) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if err := cfg.RequireProducer(); err != nil {
		return err
	}
	a, ctx, err := openService(ctx, cfg, newLogger(env, cfg, "scheduler", false), "scheduler")
	if err != nil {
		return err
	}
	defer a.Close()
	return a.refused(ctx, runClock(ctx, a, interval, setPeriod))
}

// runClock sweeps until ctx is done (SIGTERM). With setPeriod it publishes
// its period over a different one another clock published.
func runClock(ctx context.Context, a *app, interval time.Duration, setPeriod bool) error {
	p, err := schedulerParams(a, interval)
	if err != nil {
		return err
	}
	p.Logger, p.SetPeriod = a.quietLog(), setPeriod
	s, err := scheduler.New(p)
	if err != nil {
		return err
	}
	a.checkSealedWhenUp(ctx)
	if a.clockMeasured(ctx) != nil {
		return nil // SIGTERM before Redis ever told its time
	}
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
		Interval: interval, Now: a.clock.Now,
		Measure: func(ctx context.Context) error { _, err := a.clock.Measure(ctx); return err }}, nil
}

// globalWindow is this process's REKEY_MAINTENANCE_WINDOW.
func globalWindow(cfg *config.Config) (*store.Window, error) {
	return parseWindowSetting(cfg.MaintenanceWindow)
}

// fleetWindow is the maintenance window the fleet's scheduled rotations
// keep to: REKEY_MAINTENANCE_WINDOW as the running clocks announce it
// with their settings (announceKeys), else as this command has it. A one-off command need not
// be run with the clock's settings; the times it prints must be the
// clock's all the same.
func fleetWindow(ctx context.Context, a *app) (*store.Window, error) {
	if w, ok := store.AnnouncedWindow(readRunning(ctx, a.store)); ok {
		return w, nil
	}
	return globalWindow(a.cfg)
}

// parseWindowSetting reads a REKEY_MAINTENANCE_WINDOW value; "" is none.
func parseWindowSetting(v string) (*store.Window, error) {
	if v == "" {
		return nil, nil
	}
	w, err := store.ParseWindow(v)
	if err != nil {
		return nil, fmt.Errorf("REKEY_MAINTENANCE_WINDOW: %w", err)
	}
	return &w, nil
}

// maxOperatorName bounds --by: a person's or a script's name.
const maxOperatorName = 128

// operatorName checks --by, the name the status shows as who to ask: an
// empty or blank one (a script's unset $USER) stands for "operator", as an
// empty --reason stands for its default, and one that is not a short line
// of text is refused (exit 2) before anything changes.
func operatorName(by string) (string, error) {
	switch {
	case strings.TrimSpace(by) == "":
		return "operator", nil
	case len(by) > maxOperatorName:
		return "", usagef("--by is longer than %d bytes: give a name", maxOperatorName)
	case strings.ContainsFunc(by, printable.Unsafe):
		return "", usagef("--by holds a line break, a control or a bidi character: give a name")
	}
	return by, nil
}

func pauseScheduler(ctx context.Context, env *environ, a *app, by string) error {
	// A second pause would take the first one's name and time, which the
	// status shows as who to ask before resuming.
	at, who, err := a.store.SchedulePaused(ctx)
	if err != nil {
		return err
	}
	if !at.IsZero() {
		_, err := fmt.Fprintf(env.stdout, "scheduler already paused (by %s since %s): left as it is\n",
			printable.Text(who), at.UTC().Format(time.RFC3339))
		return err
	}
	if err := a.store.PauseSchedule(ctx, by); err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.stdout, "scheduler paused: no scheduler enqueues rotations until 'rekey scheduler resume'")
	warnWaveGoesOn(ctx, env, a)
	warnIfNoProcess(ctx, env, a)
	return err
}

// warnWaveGoesOn says on stderr, when rotations are in flight, that a
// pause stops the schedule only: a wave an operator or the API requested
// goes on, and 'rekey batches cancel' is what stops one.
func warnWaveGoesOn(ctx context.Context, env *environ, a *app) {
	n, err := a.store.InFlightCount(ctx)
	if err != nil || n == 0 {
		return
	}
	fmt.Fprintf(env.stderr, "rekey: %s in flight; a pause stops the schedule only, not a wave: "+
		"'rekey batches list --running' names the running batches and 'rekey batches cancel ID' stops one\n",
		count(int(n), "rotation is", "rotations are"))
}

// warnIfNoProcess says on stderr when no running rekey process announces
// itself on this Redis database (every web, worker and clock does, every
// minute): a command that changes what the running processes do (a pause,
// a resume) then changed a database none of them reads, most likely one
// REDIS_URL names by mistake, and the fleet goes on as before.
func warnIfNoProcess(ctx context.Context, env *environ, a *app) {
	live, err := a.store.SharedSettings(ctx)
	if err != nil || len(live) > 0 {
		return
	}
	o := a.rdb.Options()
	fmt.Fprintf(env.stderr, "rekey: no running rekey process announces itself on this Redis (%s, database %d): "+
		"if the fleet runs, check that REDIS_URL names its database\n", o.Addr, o.DB)
}

func resumeScheduler(ctx context.Context, env *environ, a *app) error {
	at, _, err := a.store.SchedulePaused(ctx)
	if err != nil {
		return err
	}
	if err := a.store.ResumeSchedule(ctx); err != nil {
		return err
	}
	resumed := "scheduler resumed"
	if at.IsZero() {
		resumed = "the scheduler was not paused"
	}
	defer warnIfNoProcess(ctx, env, a)
	// An open breaker holds every scheduler too, whatever the pause says.
	if st, err := a.store.BreakerState(ctx); err == nil && st.Open() {
		_, err := fmt.Fprintf(env.stdout, "%s, but the circuit breaker is %s: no scheduler enqueues until then\n",
			resumed, printable.Text(breaker.Describe(st)))
		return err
	}
	_, err = fmt.Fprintln(env.stdout, resumed)
	return err
}

// quarantinedWhere names where the quarantined instances are listed, for
// an unquarantine naming an instance that is not registered or not
// quarantined.
const quarantinedWhere = "'rekey scheduler status' lists the quarantined instances, the first five; " +
	"'rekey instances list' gives every instance's state"

// unquarantineInstances puts back the instances named, once every one is
// known to be registered: a mistyped id among several changes nothing, and
// the error names every id that is not.
func unquarantineInstances(ctx context.Context, env *environ, a *app, ids []string) error {
	var unknown []string
	for _, id := range ids {
		if _, err := a.store.Instance(ctx, id); errors.Is(err, store.ErrNotFound) {
			unknown = append(unknown, strconv.Quote(id))
		} else if err != nil {
			return err
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("not registered: %s; nothing was changed (%s)", strings.Join(unknown, ", "), quarantinedWhere)
	}
	global, _ := fleetWindow(ctx, a) // read once; a bad value is the scheduler's to refuse
	for _, id := range ids {
		if err := unquarantineInstance(ctx, env, a, id, global); err != nil {
			return err
		}
	}
	return nil
}

// unquarantineInstance puts id back at its next slot, which global, the
// fleet's window, may defer.
func unquarantineInstance(ctx context.Context, env *environ, a *app, id string, global *store.Window) error {
	ok, err := a.store.Unquarantine(ctx, id, "operator (rekey scheduler unquarantine)")
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("instance %q is not registered", id)
	case err != nil:
		return err
	case !ok:
		_, err := fmt.Fprintf(env.stdout, "%s was not quarantined (%s)\n", id, quarantinedWhere)
		return err
	}
	in, err := a.store.Instance(ctx, id)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "%s is no longer quarantined; next scheduled rotation %s\n", id, timeOrNone(in.NextRotation(global)))
	return err
}

// unquarantineAll puts back every instance quarantined when it starts
// (read first, a page at a time, then put back one by one), and says how
// many. An entry of the set with no quarantined instance behind it is
// dropped on the way.
func unquarantineAll(ctx context.Context, env *environ, a *app) error {
	var ids []string
	for {
		page, _, err := a.store.QuarantinedFrom(ctx, int64(len(ids)), 500)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		ids = append(ids, page...)
	}
	n := 0
	for _, id := range ids {
		ok, err := a.store.Unquarantine(ctx, id, "operator (rekey scheduler unquarantine --all)")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			if ctx.Err() != nil {
				return &stoppedError{done: instances(n) + " unquarantined; run it again for the rest", err: err}
			}
			return fmt.Errorf("%s unquarantined, then: %w", instances(n), err)
		}
		if ok {
			n++
		}
	}
	_, err := fmt.Fprintf(env.stdout, "%s no longer quarantined; each is back at its next scheduled slot\n", instances(n))
	return err
}

// scheduleFlags are `rekey scheduler set`'s flags.
type scheduleFlags struct {
	optOut, optIn bool
	window        string
}

// setSchedule changes one instance's opt-out or maintenance window,
// leaving what the flags do not name as it was.
func setSchedule(ctx context.Context, env *environ, a *app, id string, f scheduleFlags) error {
	in, err := a.store.Instance(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("instance %s is not registered", id)
	} else if err != nil {
		return err
	}
	sc := store.Schedule{OptOut: (in.ScheduleOptOut || f.optOut) && !f.optIn, Window: in.Window}
	switch f.window {
	case "":
	case "default":
		sc.Window = nil
	default:
		w, err := store.ParseWindow(f.window)
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
	global, _ := fleetWindow(ctx, a) // a bad value is the scheduler's to refuse
	text := fmt.Sprintf("%s: %s, window %s, next scheduled rotation %s\n", id,
		map[bool]string{true: "opted out", false: "scheduled"}[in.ScheduleOptOut], instanceWindowText(in.Window, global),
		timeOrNone(in.NextRotation(global)))
	if !in.QuarantinedAt.IsZero() {
		text += fmt.Sprintf("%s is quarantined since %s, and no scheduler rotates it until 'rekey scheduler unquarantine %s'\n",
			id, in.QuarantinedAt.UTC().Format(time.RFC3339), id)
	}
	_, err = io.WriteString(env.stdout, text)
	return err
}

// schedulerStatus reads and prints the status as of now on Redis's clock
// (a.clock), on which the clocks, the sweeps and the schedule write their
// times: on the machine's own, a clock minutes off would make a running
// clock process look stopped, or an overdue sweep look on time.
func schedulerStatus(ctx context.Context, env *environ, a *app, asJSON bool) error {
	now := a.clock.Now().UTC()
	st, err := readScheduleStatus(ctx, a, now)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env.stdout, st.output())
	}
	st.write(env.stdout)
	return writeHoldStatus(ctx, env.stdout, a.store, now)
}
