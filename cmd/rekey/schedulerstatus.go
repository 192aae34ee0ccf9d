package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/store"
)

// scheduleStatus is what `rekey scheduler status` prints.
type scheduleStatus struct {
	now         time.Time
	policy      store.SchedulePolicy
	window      *store.Window
	pausedAt    time.Time
	pausedBy    string
	breaker     store.BreakerState
	last        store.SweepRecord
	clocks      int64 // clock processes that run (store.LiveClocks)
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
	if s.window, err = fleetWindow(ctx, a); err != nil {
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
	if s.clocks, err = a.store.LiveClocks(ctx, now, store.ClockGrace); err != nil {
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
		fmt.Fprintf(w, "%-19s %s\n", label+":", printable.Text(fmt.Sprintf(format, args...)))
	}
	if s.policy.Period == 0 {
		line("scheduled rotation", "off (REKEY_ROTATION_PERIOD=0): the scheduler idles")
	} else {
		line("scheduled rotation", "every %s", printable.Duration(s.policy.Period))
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
		q += " (rekey scheduler unquarantine ID... or --all; rekey instances show ID says why)"
	}
	line("quarantined", "%s (after %d failed rotations in a row, or one that cannot go on)", q, s.policy.QuarantineAfter)
}

func (s scheduleStatus) state() string {
	_, text := s.status()
	return text
}

// stateCode is state() as one word.
func (s scheduleStatus) stateCode() string {
	code, _ := s.status()
	return code
}

// status says what the scheduler is doing, as one word for --json and as a
// sentence for people, from one decision so that the two never disagree.
func (s scheduleStatus) status() (code, text string) {
	switch {
	case !s.pausedAt.IsZero():
		return "paused", fmt.Sprintf("paused since %s by %s (rekey scheduler resume)", s.pausedAt.Format(time.RFC3339), s.pausedBy)
	case s.breaker.Open():
		return "held", "held: the circuit breaker is open, nothing is enqueued (see below)"
	case s.last.At.IsZero():
		return "never_swept", "never swept: is the clock process (rekey scheduler) running?"
	case s.stopped():
		return "stopped", fmt.Sprintf("no clock process is running (last sweep %s): nothing is enqueued until one starts "+
			"(rekey scheduler; on Heroku, heroku ps:scale clock=1)", s.last.At.Format(time.RFC3339))
	case s.last.Failed():
		return "failing", fmt.Sprintf("failing since %s: %s; last good sweep %s", s.last.FailingSince.Format(time.RFC3339),
			s.last.Error, timeOrNone(s.last.GoodAt))
	case s.last.Outcome == scheduler.PeriodMismatch && s.now.Sub(s.last.At) <= store.ClockGrace+s.last.Next.Sub(s.last.At):
		return "held", fmt.Sprintf("held: a clock runs with a REKEY_ROTATION_PERIOD other than the published %s and enqueues nothing "+
			"until it restarts with it (last sweep %s)", store.PeriodText(s.policy.Period), s.last.At.Format(time.RFC3339))
	}
	return "running", fmt.Sprintf("running; last sweep %s enqueued %d, deferred %d", s.last.At.Format(time.RFC3339),
		s.last.Enqueued, s.last.Deferred)
}

// stopped reports whether scheduled rotation is on but no clock process
// runs: the last stopped, cleanly or not.
func (s scheduleStatus) stopped() bool { return s.policy.Period > 0 && s.clocks == 0 }

func (s scheduleStatus) nextSweep() string {
	switch {
	case s.stopped() && s.last.Next.IsZero():
		return "none: no clock process is running"
	case s.last.Next.IsZero():
		return "unknown"
	case s.now.Sub(s.last.Next) > store.ClockGrace:
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

// instanceWindowText is an instance's maintenance window: its own, else
// the fleet's (REKEY_MAINTENANCE_WINDOW, global), which the scheduler
// falls back to.
func instanceWindowText(own, global *store.Window) string {
	if own == nil && global != nil {
		return "default (" + windowText(global) + ", REKEY_MAINTENANCE_WINDOW)"
	}
	return windowText(own)
}

// scheduleOutput is `rekey scheduler status --json`: the figures of the
// text, with the state as a word (running, paused, held, never_swept,
// stopped: no clock process runs, failing: the last sweep failed).
type scheduleOutput struct {
	PeriodSeconds     float64   `json:"period_seconds"`
	State             string    `json:"state"`
	StateText         string    `json:"state_text"`
	PausedAt          time.Time `json:"paused_at,omitzero"`
	PausedBy          string    `json:"paused_by,omitempty"`
	BreakerOpen       bool      `json:"breaker_open"`
	BreakerText       string    `json:"breaker_text"`
	LastSweepAt       time.Time `json:"last_sweep_at,omitzero"`
	LastSweepEnqueued int       `json:"last_sweep_enqueued"`
	LastSweepDeferred int       `json:"last_sweep_deferred"`
	// LastSweepOutcome is the last sweep's outcome: swept, paused,
	// breaker_open, period_mismatch or failed.
	LastSweepOutcome string `json:"last_sweep_outcome,omitempty"`
	// LastSweepError is the class of the last sweep's error when it
	// failed, such as "due_index: redis_error".
	LastSweepError string `json:"last_sweep_error,omitempty"`
	// LastGoodSweepAt is when the last sweep that did not fail ran.
	LastGoodSweepAt time.Time `json:"last_good_sweep_at,omitzero"`
	// FailingSince is when the first of the failed sweeps in a row up to
	// the last ran.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// ClocksRunning counts the clock processes that run.
	ClocksRunning   int64     `json:"clocks_running"`
	NextSweepAt     time.Time `json:"next_sweep_at,omitzero"`
	Cap             int       `json:"per_sweep_cap"`
	CapNote         string    `json:"per_sweep_cap_note"`
	Window          string    `json:"maintenance_window_utc,omitempty"`
	Live            int64     `json:"instances_live"`
	Scheduled       int64     `json:"instances_scheduled"`
	DueNow          int64     `json:"due_now"`
	DueHour         int64     `json:"due_next_hour"`
	DueDay          int64     `json:"due_next_day"`
	InFlight        int64     `json:"in_flight"`
	Quarantined     int64     `json:"quarantined"`
	QuarantinedIDs  []string  `json:"quarantined_ids"`
	QuarantineAfter int       `json:"quarantine_after"`
}

func (s scheduleStatus) output() scheduleOutput {
	o := scheduleOutput{PeriodSeconds: s.policy.Period.Seconds(), State: s.stateCode(), StateText: s.state(),
		PausedAt: s.pausedAt, PausedBy: s.pausedBy, BreakerOpen: s.breaker.Open(), BreakerText: breaker.Describe(s.breaker),
		LastSweepAt: s.last.At, LastSweepEnqueued: s.last.Enqueued, LastSweepDeferred: s.last.Deferred,
		LastSweepOutcome: s.last.Outcome, LastSweepError: s.last.Error, LastGoodSweepAt: s.last.GoodAt,
		FailingSince: s.last.FailingSince, ClocksRunning: s.clocks,
		NextSweepAt: s.last.Next, Cap: s.cap, CapNote: s.capNote, Live: s.live, Scheduled: s.scheduled,
		DueNow: s.dueNow, DueHour: s.dueHour, DueDay: s.dueDay, InFlight: s.backlog, Quarantined: s.quarantined,
		QuarantinedIDs: append([]string{}, s.qIDs...), QuarantineAfter: s.policy.QuarantineAfter}
	if s.window != nil {
		o.Window = s.window.String()
	}
	return o
}
