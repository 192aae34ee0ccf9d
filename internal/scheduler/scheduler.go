// Package scheduler is rekey's clock (Procfile: clock): every interval it
// sweeps the store's due index and enqueues the scheduled rotations that
// are due, on the bulk queue, never more per sweep than the bulk share of
// the Heroku budget absorbs in one interval.
//
// The store keeps the due index current (registration, promotion, failure,
// deprovisioning; see internal/store's schedule.go); the scheduler only
// reads it and moves the entries it handles. Two schedulers may run at
// once: a Redis lock lets one sweep at a time, and the enqueue is
// idempotent anyway, because a scheduled rotation's id is derived from the
// instance and its due time (store.ScheduledRotationID) and every step
// that moves a due entry is a compare-and-set on the time it was read.
//
// A sweep creates no batch: scheduled rotations are followed through their
// audit events ("scheduled", then "promoted" or "failed"), the due index
// and the quarantine list. A batch per sweep would add a key a minute and
// count the same rotation twice when two sweeps race.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Params build a Scheduler.
type Params struct {
	// Store holds the due index. Required.
	Store *store.Store
	// Enqueuer enqueues rotate tasks (an *asynq.Client). Required.
	Enqueuer fleet.Enqueuer
	Logger   zerolog.Logger
	// Period is REKEY_ROTATION_PERIOD; 0 turns scheduled rotation off and
	// the scheduler idles.
	Period time.Duration
	// SetPeriod lets Start publish Period over a different period another
	// clock published (`rekey scheduler --set-period`). Without it Start
	// refuses to run with a period other than the published one.
	SetPeriod bool
	// QuarantineAfter is REKEY_QUARANTINE_AFTER; 0 means never quarantine.
	QuarantineAfter int
	// Window is REKEY_MAINTENANCE_WINDOW, for instances without their own;
	// nil means any time.
	Window *store.Window
	// PerHour is REKEY_HEROKU_RATE, the Heroku calls per hour rekey may
	// spend. Required when Period is set.
	PerHour int
	// Reserve is how many calls of each interval's budget are left to
	// interactive work: the rate limiter's Params.Reserve. 0 means none.
	Reserve int
	// Interval between sweeps; 0 means one minute.
	Interval time.Duration
	// Now is the clock of Run; nil means time.Now. Sweep takes its time as
	// an argument.
	Now func() time.Time
	// Measure, when set, brings Now onto Redis's clock before each sweep
	// of Run (redisclock.Clock.Measure): a machine clock stepped by hours
	// (an NTP correction, a VM resumed) is then never read as it is.
	Measure func(context.Context) error
}

// Scheduler sweeps the due index. It is safe for concurrent use, and any
// number of Schedulers, in any number of processes, may share one Redis.
type Scheduler struct {
	p     Params
	cap   int
	lease time.Duration
	token string
	// lock is false only in tests that prove the enqueue idempotent alone.
	lock bool
}

// Outcomes of a sweep.
const (
	// Swept: the sweep ran.
	Swept = "swept"
	// Paused: an operator paused scheduling (`rekey scheduler pause`).
	Paused = "paused"
	// BreakerOpen: the circuit breaker is open (internal/breaker): Heroku
	// denied many instances at once, and nothing is enqueued until an
	// operator resumes it (`rekey breaker resume`).
	BreakerOpen = "breaker_open"
	// Off: REKEY_ROTATION_PERIOD is 0.
	Off = "off"
	// Locked: another scheduler is sweeping.
	Locked = "locked"
	// PeriodMismatch: the period published in Redis is not this
	// scheduler's own (another clock replaced it with --set-period), so
	// the due times no longer follow this scheduler's period and it
	// enqueues nothing.
	PeriodMismatch = "period_mismatch"
	// Failed: the sweep failed part-way (Result.Error says how); what it
	// enqueued before stays enqueued, and the next sweep goes on.
	Failed = "failed"
)

// Result counts what one sweep did.
type Result struct {
	Outcome string
	// Published is the period published in Redis when the outcome is
	// PeriodMismatch.
	Published time.Duration
	// Cap is the per-sweep cap; Backlog the scheduled rotations enqueued
	// earlier and not finished; Allowance what this sweep could enqueue:
	// Cap less Backlog.
	Cap, Backlog, Allowance int
	// Enqueued scheduled rotations (new, or resumed after a crash).
	Enqueued int
	// Joined: due instances with a rotation already in flight.
	Joined int
	// Deferred: due instances outside their maintenance window.
	Deferred int
	// Removed: entries of instances that are gone.
	Removed int
	// Skipped: entries another sweep, or a rotation that just finished,
	// moved first.
	Skipped int
	// Error is the class of a failed sweep's error (ErrorClass).
	Error string
}

// maxScan bounds how many due entries one sweep looks at beyond its
// allowance, so a sweep stays short when most entries are deferred.
const maxScan = 5000

// parallel is how many due entries a sweep handles at once: each costs a
// few round trips to Redis, and a sweep should take well under a second.
const parallel = 16

// New checks p and returns a Scheduler.
func New(p Params) (*Scheduler, error) {
	switch {
	case p.Store == nil || p.Enqueuer == nil:
		return nil, errors.New("scheduler: Store and Enqueuer are required")
	case p.Period < 0:
		return nil, errors.New("scheduler: REKEY_ROTATION_PERIOD must not be negative")
	case p.Period > 0 && p.Period < time.Minute:
		return nil, fmt.Errorf("scheduler: REKEY_ROTATION_PERIOD %s is shorter than a minute", p.Period)
	case p.Period > 0 && p.PerHour <= 0:
		return nil, errors.New("scheduler: REKEY_HEROKU_RATE must be a positive number of calls per hour")
	case p.QuarantineAfter < 0:
		return nil, errors.New("scheduler: REKEY_QUARANTINE_AFTER must not be negative")
	}
	if p.Interval <= 0 {
		p.Interval = time.Minute
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &Scheduler{p: p, cap: Cap(p.PerHour, p.Interval, p.Reserve), lease: Lease(p.Period),
		token: hex.EncodeToString(b[:]), lock: true}, nil
}

// Cap is the most scheduled rotations one sweep enqueues: the calls the
// budget grants in one interval (perHour × interval / 1h, rounded down),
// less the interactive reserve, and at least one. A rotation costs one
// Heroku call in the steady state.
func Cap(perHour int, interval time.Duration, reserve int) int {
	n := int(int64(perHour)*int64(interval)/int64(time.Hour)) - max(reserve, 0)
	return max(n, 1)
}

// Lease is how long a handled due entry waits for its rotation before a
// sweep looks at it again: a quarter of the period, at most six hours.
// The rotation's promotion or failure moves the entry on well before; the
// lease matters only when a rotation is lost or still retrying.
func Lease(period time.Duration) time.Duration { return min(period/4, 6*time.Hour) }

// Cap returns the scheduler's per-sweep cap.
func (s *Scheduler) Cap() int { return s.cap }

// Interval returns the time between sweeps.
func (s *Scheduler) Interval() time.Duration { return s.p.Interval }

// Start publishes the scheduler's policy to every process (the scripts
// that keep the due index read it) and brings the index in line with the
// instances: a backfill, or a full recomputation when the period changed.
// Run calls it; tests that drive Sweep call it first.
//
// The period is fleet-wide: every promotion moves its instance's due time
// by the published period, and a recomputation moves every instance's. So
// a scheduler whose period differs from one another clock published (a
// clock started by mistake with another environment's settings) refuses
// to start with *PeriodError and changes nothing, unless Params.SetPeriod
// says the change is meant.
func (s *Scheduler) Start(ctx context.Context) error {
	pol := store.SchedulePolicy{Period: s.p.Period, QuarantineAfter: s.p.QuarantineAfter}
	var changed bool
	var err error
	if s.p.SetPeriod {
		var old store.SchedulePolicy
		if old, err = s.p.Store.SchedulePolicy(ctx); err != nil {
			return err
		}
		if changed, err = s.p.Store.SetSchedulePolicy(ctx, pol); err == nil && changed && old.Published {
			s.p.Logger.Warn().Str("from", store.PeriodText(old.Period)).Str("to", store.PeriodText(s.p.Period)).
				Msg("schedule_period_set")
		}
	} else {
		changed, err = s.p.Store.PublishSchedulePolicy(ctx, pol, s.p.Now(), s.p.Interval)
	}
	var conflict *store.PeriodConflictError
	if errors.As(err, &conflict) {
		return &PeriodError{Published: conflict.Published, Own: conflict.Own,
			PublishedQuarantine: conflict.PublishedQuarantine, OwnQuarantine: conflict.OwnQuarantine}
	}
	if err != nil {
		return err
	}
	if s.p.Period != 0 {
		n, err := s.p.Store.Reindex(ctx, changed)
		if err != nil {
			return err
		}
		s.p.Logger.Info().Bool("period_changed", changed).Int("entries", n).Dur("period", s.p.Period).
			Int("cap", s.cap).Msg("schedule_indexed")
	}
	s.indexV1Apps(ctx)
	s.indexDatabases(ctx)
	return nil
}

// indexV1Apps fills the index of V1 apps for instances registered before
// it existed (store.IndexV1Apps), scheduled rotation on or off, and logs
// each pair of live V1 instances that already set a var of one app:
// every push of either lands in the config both apps' dynos read, which no
// registration can undo; the partner must deprovision the wrong one. It
// runs after the schedule's index, and a failure is logged, not returned:
// registrations check the index as they are, and the next start fills it.
func (s *Scheduler) indexV1Apps(ctx context.Context) {
	shared, err := s.p.Store.IndexV1Apps(ctx)
	if err != nil {
		s.p.Logger.Warn().Str("error", err.Error()).Msg("v1_apps_index_failed")
	}
	for _, sh := range shared {
		s.p.Logger.Error().Str("heroku_id", sh.HerokuID).Str("config_var", sh.ConfigVar).
			Strs("instances", sh.Instances[:]).Str("detail", "two live v1 instances set this config var of one app: "+
			"each rotation of either puts its credential in that app's config, so one customer's secret reaches "+
			"the other's app; deprovision the instance registered with the wrong heroku_id").Msg("v1_app_shared")
	}
}

// indexDatabases fills the index of live database locations for
// instances registered before it existed (store.IndexDatabases), and logs
// each pair of live instances that already share a database or an owner
// role on one server: the PostgreSQL issuer's credentials of either open
// the other's data, which no registration can undo. Like indexV1Apps, a
// failure is logged, not returned.
func (s *Scheduler) indexDatabases(ctx context.Context) {
	shared, err := s.p.Store.IndexDatabases(ctx)
	if err != nil {
		s.p.Logger.Warn().Str("error", err.Error()).Msg("databases_index_failed")
	}
	for _, sh := range shared {
		s.p.Logger.Error().Str("shared", sh.What).Strs("instances", sh.Instances[:]).Str("detail",
			"two live instances were registered with one "+sh.What+" on a server: the credentials minted for either "+
				"open the other's data; register the one with the wrong location again with its own, or deprovision it").
			Msg("database_shared")
	}
}

// PeriodError is a scheduler that will not start or sweep because its
// REKEY_ROTATION_PERIOD is not the period published for the fleet, or, at
// start, its REKEY_QUARANTINE_AFTER is not the published limit while
// another clock runs.
type PeriodError struct {
	// Published is the fleet's period in Redis; Own is this scheduler's.
	Published, Own time.Duration
	// PublishedQuarantine and OwnQuarantine are the fleet's and this
	// scheduler's REKEY_QUARANTINE_AFTER: with the periods alike, the
	// limits differ.
	PublishedQuarantine, OwnQuarantine int
}

func (e *PeriodError) Error() string {
	if e.Published == e.Own {
		return fmt.Sprintf("the fleet's quarantine limit is %d, published by a clock that still runs, but this clock's REKEY_QUARANTINE_AFTER is %d; "+
			"nothing was changed and this clock does not start (is this the environment you meant?). "+
			"To change the fleet's limit, set it in the running clock's environment (on Heroku, `heroku config:set` restarts the clock with it); "+
			"`rekey scheduler --set-period` publishes this clock's limit at once, but a clock still running with the other one publishes "+
			"its own again when it restarts. Otherwise set REKEY_QUARANTINE_AFTER=%d",
			e.PublishedQuarantine, e.OwnQuarantine, e.PublishedQuarantine)
	}
	return fmt.Sprintf("the fleet's rotation period is %s, published by a clock that still runs, but this clock's REKEY_ROTATION_PERIOD is %s; "+
		"nothing was changed and this clock does not start (is this the environment you meant?). "+
		"To change the fleet's period to %s, set it on the running clock and restart that, or run `rekey scheduler --set-period` with it: "+
		"every instance's next scheduled rotation is recomputed and clocks still running with %s enqueue nothing until they restart with the new period. "+
		"Otherwise set REKEY_ROTATION_PERIOD=%s",
		store.PeriodText(e.Published), store.PeriodText(e.Own), store.PeriodText(e.Own), store.PeriodText(e.Published),
		printable.Setting(e.Published))
}

// Run starts the scheduler and sweeps every interval until ctx is done.
// With scheduled rotation off it says so and idles.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	t := time.NewTicker(s.p.Interval)
	defer t.Stop()
	if s.p.Period == 0 {
		s.p.Logger.Info().Msg("scheduled_rotation_off")
		return s.idle(ctx, t)
	}
	last := ""
	for {
		if s.p.Measure != nil {
			// A failed measurement keeps the last offset: Redis is most
			// likely out of reach, and the sweep says so.
			_ = s.p.Measure(ctx)
		}
		// Said before every sweep, whether this clock sweeps or another
		// holds the lock: while it runs, no clock started with another
		// period replaces the fleet's.
		if err := s.p.Store.ClockAlive(ctx, s.token, s.p.Now().Add(s.p.Interval)); err != nil && ctx.Err() == nil {
			s.p.Logger.Warn().Err(err).Msg("clock_alive_not_recorded")
		}
		res, err := s.Sweep(ctx, s.p.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.p.Logger.Warn().Err(err).Str("class", res.Error).Msg("scheduled_sweep_failed")
		case res.Outcome == Paused && last != Paused:
			s.p.Logger.Info().Msg("scheduler_paused")
		case res.Outcome == BreakerOpen && last != BreakerOpen:
			s.p.Logger.Warn().Msg("scheduler_held_by_breaker")
		case res.Outcome == PeriodMismatch && last != PeriodMismatch:
			s.p.Logger.Error().Str("published_period", store.PeriodText(res.Published)).
				Str("own_period", store.PeriodText(s.p.Period)).
				Str("detail", "the fleet's rotation period was changed by another clock (rekey scheduler --set-period); "+
					"this clock enqueues nothing until it runs with REKEY_ROTATION_PERIOD="+res.Published.String()+" or the period is set back").
				Msg("scheduler_period_mismatch")
		case res.Outcome == Swept && (last == Paused || last == BreakerOpen || last == PeriodMismatch):
			s.p.Logger.Info().Msg("scheduler_resumed")
		}
		if res.Enqueued+res.Deferred+res.Removed > 0 {
			s.logSweep(res)
		}
		last = res.Outcome
		select {
		case <-ctx.Done():
			// Stopped cleanly (a restart, a deploy): a clock started next
			// with another period may publish it.
			if err := s.p.Store.ClockStopped(context.WithoutCancel(ctx), s.token, s.p.Now(), s.p.Interval); err != nil {
				s.p.Logger.Warn().Err(err).Msg("clock_stop_not_recorded")
			}
			return nil
		case <-t.C:
		}
	}
}

// idle runs a clock with scheduled rotation off until ctx is done. It
// says every interval that it runs (as an idle clock, which the count of
// clocks that sweep leaves out), so that "off" is a published period like
// any other: a clock started with a period meanwhile (a shell with another
// environment) refuses to start rather than turn scheduled rotation back
// on for the whole fleet.
func (s *Scheduler) idle(ctx context.Context, t *time.Ticker) error {
	token := store.IdleClockPrefix + s.token
	for {
		if err := s.p.Store.ClockAlive(ctx, token, s.p.Now().Add(s.p.Interval)); err != nil && ctx.Err() == nil {
			s.p.Logger.Warn().Err(err).Msg("clock_alive_not_recorded")
		}
		select {
		case <-ctx.Done():
			if err := s.p.Store.ClockStopped(context.WithoutCancel(ctx), token, s.p.Now(), s.p.Interval); err != nil {
				s.p.Logger.Warn().Err(err).Msg("clock_stop_not_recorded")
			}
			return nil
		case <-t.C:
		}
	}
}

func (s *Scheduler) logSweep(res Result) {
	s.p.Logger.Info().Int("enqueued", res.Enqueued).Int("joined", res.Joined).Int("deferred", res.Deferred).
		Int("removed", res.Removed).Int("cap", res.Cap).Int("backlog", res.Backlog).Msg("scheduled_sweep")
}

// Sweep runs one sweep as of now: unless paused, held by an open circuit
// breaker, another scheduler holds the lock, or the published period is
// not this scheduler's own (PeriodMismatch), it enqueues the longest-overdue due instances, up to
// the cap less the scheduled backlog, and defers those outside their
// maintenance window. Leftovers wait for the next sweep. A sweep that
// fails part-way is recorded as Failed with its ErrorClass, and the last
// good sweep's time is kept (store.SweepRecord), so that status and
// /metrics tell a failing scheduler from one that runs.
func (s *Scheduler) Sweep(ctx context.Context, now time.Time) (Result, error) {
	if s.p.Period == 0 {
		return Result{Outcome: Off}, nil
	}
	res, err := s.sweep(ctx, now)
	switch {
	case err == nil && res.Outcome == Locked:
		return res, nil
	case err != nil && ctx.Err() != nil:
		return res, err // stopping: not a failure of the sweep
	case err != nil:
		res.Outcome, res.Error = Failed, ErrorClass(err)
	}
	return res, errors.Join(err, s.record(ctx, now, res))
}

func (s *Scheduler) sweep(ctx context.Context, now time.Time) (Result, error) {
	held, published, err := s.held(ctx)
	if err != nil {
		return Result{Cap: s.cap}, &stepError{step: "policy", err: err}
	}
	if held != "" {
		return Result{Outcome: held, Cap: s.cap, Published: published}, nil
	}
	if s.lock {
		ok, err := s.p.Store.LockSweep(ctx, s.token, s.p.Interval)
		if err != nil || !ok {
			return Result{Outcome: Locked, Cap: s.cap}, wrapStep("lock", err)
		}
		defer func() { _ = s.p.Store.UnlockSweep(context.WithoutCancel(ctx), s.token) }()
	}
	res := Result{Outcome: Swept, Cap: s.cap}
	backlog, err := s.p.Store.ScheduledBacklog(ctx, now.Add(-s.lease))
	if err != nil {
		return res, &stepError{step: "backlog", err: err}
	}
	res.Backlog = int(backlog)
	res.Allowance = max(s.cap-res.Backlog, 0)
	return res, s.drain(ctx, now, &res)
}

// held says why no sweep may run now: Paused by an operator, BreakerOpen
// by the circuit breaker, PeriodMismatch (with the published period) when
// the due times follow another clock's period, or "" when a sweep may run.
func (s *Scheduler) held(ctx context.Context) (string, time.Duration, error) {
	pol, err := s.p.Store.SchedulePolicy(ctx)
	switch {
	case err != nil:
		return "", 0, err
	case pol.Period != s.p.Period.Truncate(time.Millisecond):
		// Until a policy is published the scripts use the default period.
		return PeriodMismatch, pol.Period, nil
	}
	pausedAt, _, err := s.p.Store.SchedulePaused(ctx)
	switch {
	case err != nil:
		return "", 0, err
	case !pausedAt.IsZero():
		return Paused, 0, nil
	}
	b, err := s.p.Store.BreakerState(ctx)
	switch {
	case err != nil:
		return "", 0, err
	case b.Open():
		return BreakerOpen, 0, nil
	}
	return "", 0, nil
}

// drain handles due entries, oldest first, until the allowance is spent,
// nothing more is due, or maxScan entries were looked at.
func (s *Scheduler) drain(ctx context.Context, now time.Time, res *Result) error {
	seen := make(map[string]bool)
	for res.Enqueued < res.Allowance && len(seen) < res.Allowance+maxScan {
		due, err := s.p.Store.DueInstances(ctx, now, int64(res.Allowance-res.Enqueued))
		if err != nil {
			return &stepError{step: "due_index", err: err}
		}
		fresh := make([]store.Due, 0, len(due))
		ids := make([]string, 0, len(due))
		for _, d := range due {
			if !seen[d.InstanceID] {
				seen[d.InstanceID] = true
				fresh, ids = append(fresh, d), append(ids, d.InstanceID)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		ins, err := s.p.Store.Instances(ctx, ids)
		if err != nil {
			return &stepError{step: "instances", err: err}
		}
		if err := s.handleAll(ctx, now, fresh, ins, res); err != nil {
			return err
		}
	}
	return nil
}

// handleAll handles a page of due entries, parallel at once, and adds up
// what they did. The page never holds more entries than the allowance has
// left, and each enqueues at most one rotation, so the cap holds.
func (s *Scheduler) handleAll(ctx context.Context, now time.Time, due []store.Due, ins []store.Instance, res *Result) error {
	parts := make([]Result, len(due))
	errs := make([]error, len(due))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, len(due)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = wrapStep("due_entry", s.handle(ctx, now, due[i], ins[i], &parts[i]))
			}
		})
	}
	for i := range due {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, p := range parts {
		res.Enqueued += p.Enqueued
		res.Joined += p.Joined
		res.Deferred += p.Deferred
		res.Removed += p.Removed
		res.Skipped += p.Skipped
	}
	return errors.Join(errs...)
}

// handle enqueues the scheduled rotation of one due entry, or defers it to
// the instance's maintenance window, or drops the entry of a gone
// instance, counting what it did in res.
func (s *Scheduler) handle(ctx context.Context, now time.Time, d store.Due, in store.Instance, res *Result) error {
	if in.RegisteredAt.IsZero() || in.Deprovisioned() {
		res.Removed++
		return s.p.Store.Unschedule(ctx, d.InstanceID)
	}
	if w := s.window(in); w != nil && !w.Contains(now) {
		return s.deferTo(ctx, now, d, *w, res)
	}
	// Take the entry first: of two sweeps that read it, only one goes on.
	if ok, err := s.p.Store.TakeDue(ctx, d, now.Add(s.lease), now); err != nil || !ok {
		res.Skipped++
		return err
	}
	rot := store.ScheduledRotationID(d.InstanceID, d.At)
	// A producer's claim, which holds the rotation for the feeder: a
	// customer's click meanwhile moves it (store.RotationRequest.Overtakes).
	c, err := s.p.Store.ClaimBrief(ctx, store.RotationRequest{InstanceID: d.InstanceID, RotationID: rot,
		Reason: store.ReasonScheduled, Queue: tasks.QueueBulk})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeprovisioned):
		res.Removed++
		return s.p.Store.Unschedule(ctx, d.InstanceID)
	case err != nil:
		return err
	case c.Status == store.Done:
		// This due time was handled before (an index rebuilt from old
		// times): due again now, the next sweep claims a fresh rotation.
		res.Skipped++
		_, err := s.p.Store.TakeDue(ctx, store.Due{InstanceID: d.InstanceID, At: now.Add(s.lease)}, now, now)
		return err
	case c.Status != store.Claimed && c.Status != store.Resumed:
		// A rotation is in flight already: its promotion or failure moves
		// the entry on.
		res.Joined++
		return nil
	}
	if err := s.p.Store.NoteScheduled(ctx, d, rot, now); err != nil {
		return err
	}
	res.Enqueued++
	// Should this fail, the rotation stays in flight in the store and the
	// reconcile sweep enqueues it again.
	if c.Status == store.Resumed {
		// Claimed by an earlier sweep of the same due time (an index
		// rebuilt from old times): its task may have been released and
		// still wait. Held again, it goes back near its first place.
		return wrapStep("enqueue", fleet.Resume(ctx, s.p.Enqueuer, d.At, d.InstanceID, rot, "", store.ReasonScheduled, tasks.QueueBulk, 0))
	}
	return wrapStep("enqueue", fleet.Enqueue(ctx, s.p.Enqueuer, d.InstanceID, rot, "", store.ReasonScheduled, tasks.QueueBulk, 0))
}

// window is the maintenance window that applies to in, or nil.
func (s *Scheduler) window(in store.Instance) *store.Window {
	if in.Window != nil {
		return in.Window
	}
	return s.p.Window
}

// deferTo moves d into the next opening of w, at the instance's slot
// within the window, so deferred instances do not all start at its first
// minute. An entry that was due inside an opening and missed it (its slot
// fell after the opening's last sweep, or the cap left it over) goes to
// the next opening's start instead: at its slot again it would miss every
// opening the same way, and would queue behind the entries newly due.
func (s *Scheduler) deferTo(ctx context.Context, now time.Time, d store.Due, w store.Window, res *Result) error {
	to := w.RotatesAt(now, d.InstanceID)
	if w.Contains(d.At) {
		to = w.NextStart(now)
	}
	ok, err := s.p.Store.Defer(ctx, d, to, now, "outside maintenance window "+w.String()+" UTC")
	if ok {
		res.Deferred++
	} else if err == nil {
		res.Skipped++
	}
	return err
}

func (s *Scheduler) record(ctx context.Context, now time.Time, res Result) error {
	return s.p.Store.RecordSweep(ctx, store.SweepRecord{At: now, Next: now.Add(s.p.Interval), Cap: res.Cap,
		Allowance: res.Allowance, Enqueued: res.Enqueued, Deferred: res.Deferred, Outcome: res.Outcome,
		Error: res.Error})
}
