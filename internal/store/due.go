package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Due is one entry of the due index: an instance and when its scheduled
// rotation is due.
type Due struct {
	InstanceID string
	At         time.Time
}

// DueInstances returns up to limit entries of the due index due at or
// before t, the longest overdue first.
func (s *Store) DueInstances(ctx context.Context, t time.Time, limit int64) ([]Due, error) {
	ids, at, err := s.dueMembers(ctx, dueKey(), t, limit)
	if err != nil {
		return nil, fmt.Errorf("due instances: %w", err)
	}
	out := make([]Due, len(ids))
	for i, id := range ids {
		out[i] = Due{InstanceID: id, At: at[i]}
	}
	return out, nil
}

// CountDue counts the instances whose scheduled rotation is due at or
// before t, overdue ones included.
func (s *Store) CountDue(ctx context.Context, t time.Time) (int64, error) {
	n, err := s.rdb.ZCount(ctx, dueKey(), "-inf", strconv.FormatInt(ms(t), 10)).Result()
	if err != nil {
		return 0, fmt.Errorf("count due: %w", err)
	}
	return n, nil
}

// CountScheduled counts the instances in the due index.
func (s *Store) CountScheduled(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, dueKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("count scheduled: %w", err)
	}
	return n, nil
}

// TakeDue moves the due entry d to leaseUntil, so that no sweep takes it
// again while its rotation runs (the rotation's promotion or failure moves
// it on). It reports false, and does nothing, when the entry moved since
// it was read: another sweep took it, or a rotation finished meanwhile.
func (s *Store) TakeDue(ctx context.Context, d Due, leaseUntil, now time.Time) (bool, error) {
	return s.moveDue(ctx, d, leaseUntil, now, "", "")
}

// Defer moves the due entry d to a later time, with a "deferred" audit
// event saying why. It reports false, and does nothing, when the entry
// moved since it was read.
func (s *Store) Defer(ctx context.Context, d Due, to, now time.Time, why string) (bool, error) {
	return s.moveDue(ctx, d, to, now, EventDeferred, why)
}

func (s *Store) moveDue(ctx context.Context, d Due, to, now time.Time, event, detail string) (bool, error) {
	keys := moveDueKeys{due: dueKey(), instanceEvents: historyKey(d.InstanceID), events: eventsKey()}
	args := []any{d.InstanceID, ms(d.At), ms(to), ms(now), s.eventsPerInstance, s.eventsGlobal, event, detail}
	n, err := moveDueScript.Run(ctx, s.rdb, keys.list(), args...).Int()
	if err != nil {
		return false, scriptError("move due entry", err)
	}
	return n == 1, nil
}

// moveDueKeys are the KEYS of moveDueScript, one field per key, in order.
type moveDueKeys struct {
	due            string // KEYS[1] -> rekey:due
	instanceEvents string // KEYS[2] -> rekey:history:<instance id>
	events         string // KEYS[3] -> rekey:events
}

func (k moveDueKeys) list() []string { return []string{k.due, k.instanceEvents, k.events} }

// NoteScheduled records that the scheduled rotation rotationID of d is
// about to be enqueued: the instance counts in ScheduledBacklog until the
// rotation finishes, and a "scheduled" audit event is written.
func (s *Store) NoteScheduled(ctx context.Context, d Due, rotationID string, now time.Time) error {
	keys := noteScheduledKeys{scheduled: scheduledKey(), instanceEvents: historyKey(d.InstanceID), events: eventsKey()}
	args := []any{d.InstanceID, rotationID, ms(now), s.eventsPerInstance, s.eventsGlobal,
		"due " + d.At.UTC().Format(time.RFC3339)}
	return scriptError("note scheduled", noteScheduledScript.Run(ctx, s.rdb, keys.list(), args...).Err())
}

// noteScheduledKeys are the KEYS of noteScheduledScript, one field per key,
// in order.
type noteScheduledKeys struct {
	scheduled      string // KEYS[1] -> rekey:scheduled
	instanceEvents string // KEYS[2] -> rekey:history:<instance id>
	events         string // KEYS[3] -> rekey:events
}

func (k noteScheduledKeys) list() []string { return []string{k.scheduled, k.instanceEvents, k.events} }

// Unschedule removes an instance from the due index, for an entry whose
// instance is gone. Registration adds it back.
func (s *Store) Unschedule(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, dueKey(), id).Err(); err != nil {
		return fmt.Errorf("unschedule %s: %w", id, err)
	}
	return nil
}

// ScheduledBacklog counts the scheduled rotations enqueued after since that
// have not finished.
func (s *Store) ScheduledBacklog(ctx context.Context, since time.Time) (int64, error) {
	n, err := s.rdb.ZCount(ctx, scheduledKey(), "("+strconv.FormatInt(ms(since), 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("scheduled backlog: %w", err)
	}
	return n, nil
}

// Reindex brings the due index in line with the instances: every live
// instance that is neither opted out nor quarantined gets an entry, and
// the others lose theirs. With all set, existing entries are recomputed
// too (after the period changed); otherwise they are kept (a backfill of
// instances registered before scheduled rotation existed). It returns how
// many entries it wrote or removed.
func (s *Store) Reindex(ctx context.Context, all bool) (int, error) {
	mode := map[bool]string{true: "all", false: "missing"}[all]
	if err := reindexScript.Load(ctx, s.rdb).Err(); err != nil {
		return 0, fmt.Errorf("reindex: %w", err)
	}
	changed := 0
	err := s.InstanceIDs(ctx, 500, func(ids []string) error {
		n, err := s.reindexPage(ctx, ids, mode)
		changed += n
		return err
	})
	return changed, err
}

// unlockKeys are the KEYS of unlockScript.
type unlockKeys struct {
	lock string // KEYS[1] -> rekey:schedule:lock
}

func (k unlockKeys) list() []string { return []string{k.lock} }

// reindexKeys are the KEYS of reindexScript, one field per key, in order.
type reindexKeys struct {
	instance string // KEYS[1] -> rekey:instance:<id>
	due      string // KEYS[2] -> rekey:due
	schedule string // KEYS[3] -> rekey:schedule
}

func (k reindexKeys) list() []string { return []string{k.instance, k.due, k.schedule} }

// reindexPage runs reindexScript for ids in one pipeline.
func (s *Store) reindexPage(ctx context.Context, ids []string, mode string) (int, error) {
	keys := func(id string) []string {
		return reindexKeys{instance: instanceKey(id), due: dueKey(), schedule: scheduleKey()}.list()
	}
	args := func(id string) []any { return []any{id, slotHash(id), DefaultRotationPeriod.Milliseconds(), mode} }
	changed := 0
	for i, c := range s.evalEach(ctx, reindexScript, ids, keys, args) {
		n, err := c.Int()
		if err != nil {
			return changed, fmt.Errorf("reindex %s: %w", ids[i], err)
		}
		changed += n
	}
	return changed, nil
}

// LockSweep takes the sweep lock for ttl under token and reports whether
// it got it.
func (s *Store) LockSweep(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, sweepLockKey(), token, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("lock sweep: %w", err)
	}
	return ok, nil
}

// UnlockSweep releases the sweep lock if token still holds it.
func (s *Store) UnlockSweep(ctx context.Context, token string) error {
	if err := unlockScript.Run(ctx, s.rdb, unlockKeys{lock: sweepLockKey()}.list(), token).Err(); err != nil {
		return fmt.Errorf("unlock sweep: %w", err)
	}
	return nil
}

// PauseSchedule pauses every scheduler until ResumeSchedule; by names who
// asked. Rotations already enqueued go on.
func (s *Store) PauseSchedule(ctx context.Context, by string) error {
	if err := s.rdb.HSet(ctx, scheduleKey(), "paused_at", ms(s.now()), "paused_by", by).Err(); err != nil {
		return fmt.Errorf("pause schedule: %w", err)
	}
	return nil
}

// ResumeSchedule lifts a pause.
func (s *Store) ResumeSchedule(ctx context.Context) error {
	if err := s.rdb.HDel(ctx, scheduleKey(), "paused_at", "paused_by").Err(); err != nil {
		return fmt.Errorf("resume schedule: %w", err)
	}
	return nil
}

// SchedulePaused returns when the scheduler was paused and by whom; a zero
// time means it is not paused.
func (s *Store) SchedulePaused(ctx context.Context) (time.Time, string, error) {
	vals, err := s.rdb.HMGet(ctx, scheduleKey(), "paused_at", "paused_by").Result()
	if err != nil {
		return time.Time{}, "", fmt.Errorf("schedule paused: %w", err)
	}
	at, _ := vals[0].(string)
	by, _ := vals[1].(string)
	return fromMS(at), by, nil
}

// SweepRecord is what the last sweep of any scheduler did, for `rekey
// scheduler status` and /metrics.
type SweepRecord struct {
	At        time.Time
	Next      time.Time
	Cap       int
	Allowance int
	Enqueued  int
	Deferred  int
	// Outcome is "swept", "paused", "breaker_open", "period_mismatch" or,
	// when Error is set, "failed".
	Outcome string
	// Error is the class of a failed sweep's error, in rekey's own words
	// (never the error's text, which may quote what Redis was sent); ""
	// when the sweep did not fail. RecordSweep takes a record with an
	// Error for a failed sweep.
	Error string
	// GoodAt is when the last sweep that did not fail ran (LastSweep
	// only); zero when none did.
	GoodAt time.Time
	// FailingSince is when the first of the failed sweeps in a row up to
	// the last ran (LastSweep only); zero when the last did not fail.
	FailingSince time.Time
}

// Failed reports whether the sweep failed.
func (r SweepRecord) Failed() bool { return r.Error != "" }

// RecordSweep stores r as the last sweep. A sweep that did not fail is the
// last good one and ends a run of failures; a failed one leaves the last
// good one's time as it was and starts a run of failures, or goes on with
// one.
func (s *Store) RecordSweep(ctx context.Context, r SweepRecord) error {
	k := scheduleKey()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, "sweep_at", ms(r.At), "sweep_next", ms(r.Next), "sweep_cap", r.Cap,
			"sweep_allowance", r.Allowance, "sweep_enqueued", r.Enqueued, "sweep_deferred", r.Deferred,
			"sweep_outcome", r.Outcome)
		if r.Failed() {
			p.HSet(ctx, k, "sweep_error", r.Error)
			p.HSetNX(ctx, k, "sweep_failing_since", ms(r.At))
		} else {
			p.HSet(ctx, k, "sweep_good_at", ms(r.At))
			p.HDel(ctx, k, "sweep_error", "sweep_failing_since")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record sweep: %w", err)
	}
	return nil
}

// LastSweep returns the last sweep's record; a zero At means none yet.
func (s *Store) LastSweep(ctx context.Context) (SweepRecord, error) {
	m, err := s.rdb.HGetAll(ctx, scheduleKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return SweepRecord{}, fmt.Errorf("last sweep: %w", err)
	}
	n := func(k string) int { v, _ := strconv.Atoi(m[k]); return v }
	r := SweepRecord{At: fromMS(m["sweep_at"]), Next: fromMS(m["sweep_next"]), Cap: n("sweep_cap"),
		Allowance: n("sweep_allowance"), Enqueued: n("sweep_enqueued"), Deferred: n("sweep_deferred"),
		Outcome: m["sweep_outcome"], Error: m["sweep_error"], GoodAt: fromMS(m["sweep_good_at"]),
		FailingSince: fromMS(m["sweep_failing_since"])}
	if r.GoodAt.IsZero() && !r.At.IsZero() && !r.Failed() {
		r.GoodAt = r.At // recorded before good sweeps were kept apart
	}
	return r, nil
}

// ClockGrace is how late a clock may be to say again that it runs
// (ClockAlive) before it counts as stopped, and a planned sweep as
// overdue.
const ClockGrace = 2 * time.Minute

// LiveClocks returns how many clocks (rekey scheduler processes that sweep)
// run as of now: those that said so (ClockAlive) and planned to say so
// again no more than slack before now. A clock that stopped cleanly
// (ClockStopped) does not count, nor one idling with scheduled rotation
// off. It only reads.
func (s *Store) LiveClocks(ctx context.Context, now time.Time, slack time.Duration) (int64, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, clocksKey(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(ms(now.Add(-slack)), 10), Max: "+inf"}).Result()
	if err != nil {
		return 0, fmt.Errorf("live clocks: %w", err)
	}
	var n int64
	for _, id := range ids {
		if !strings.HasPrefix(id, IdleClockPrefix) {
			n++
		}
	}
	return n, nil
}

// IdleClockPrefix starts the token of a clock that runs with scheduled
// rotation off (ClockAlive): it guards the published period "off" like a
// sweeping clock guards its own, but LiveClocks does not count it.
const IdleClockPrefix = "idle:"
