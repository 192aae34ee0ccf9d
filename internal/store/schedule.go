package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/printable"
)

// Scheduled rotation (README "Scheduled rotation"; the clock process). The store keeps a due
// index, a ZSET of every schedulable instance scored by when its next
// scheduled rotation is due, and keeps it current in the same scripts
// that change an instance: registration adds the instance at its first
// slot, every promotion moves it to its slot in the following period, a
// failed scheduled rotation moves it to a retry time (or quarantines the
// instance), deprovisioning removes it. The scheduler (internal/scheduler)
// only reads the index and moves the entries it handled.
//
// Each instance has a fixed slot within the period: the FNV-64a hash of its
// id modulo the period, counted from the Unix epoch. Instances registered
// together therefore rotate spread over the whole period, and an instance
// rotated on schedule rotates again exactly one period later.

// ReasonScheduled is the reason the scheduler gives its rotations. Failed
// rotations with this reason count towards quarantine.
const ReasonScheduled = "scheduled"

// ReasonCustomer is the reason the customer's dashboard gives the
// rotations its button starts: the customer's timeline says "you" asked.
const ReasonCustomer = "customer request"

// Defaults used until a scheduler publishes its policy (SetSchedulePolicy).
const (
	DefaultRotationPeriod  = 2160 * time.Hour
	DefaultQuarantineAfter = 3
)

// dueKey is the due index: a ZSET of schedulable instance ids scored by the
// time their next scheduled rotation is due, in milliseconds.
func dueKey() string { return keyPrefix + "due" }

// scheduleKey is a HASH shared by every scheduler and every script that
// keeps the due index: period_ms and quarantine_after (the policy the
// running scheduler published), paused_at and paused_by, and the last
// sweep's figures (sweep_*).
func scheduleKey() string { return keyPrefix + "schedule" }

// clocksKey is a ZSET of the clocks (rekey scheduler processes) that run,
// member a clock's token, scored by when, in milliseconds, it plans to say
// so next (ClockAlive): a clock whose score is more than the slack past is
// stopped or dead. It tells a clock that still runs from one that stopped
// when another starts with a different period (PublishSchedulePolicy).
func clocksKey() string { return keyPrefix + "clocks" }

// quarantinedKey is a ZSET of quarantined instance ids scored by when they
// were quarantined, in milliseconds.
func quarantinedKey() string { return keyPrefix + "quarantined" }

// scheduledKey is a ZSET of the instances whose scheduled rotation the
// scheduler enqueued and that has not finished, scored by enqueue time in
// milliseconds: the scheduled backlog a sweep subtracts from its cap.
func scheduledKey() string { return keyPrefix + "scheduled" }

// sweepLockKey is a STRING that lets one scheduler sweep at a time; it
// holds the sweeping process's random token and expires on its own.
func sweepLockKey() string { return keyPrefix + "schedule:lock" }

// slotHash is the instance's slot hash: FNV-64a of its id, shifted to 48
// bits so that Lua's doubles hold it exactly.
func slotHash(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64() >> 16
}

// Slot is the instance's offset within every period: its slot hash modulo
// the period, in whole milliseconds.
func Slot(id string, period time.Duration) time.Duration {
	p := period.Milliseconds()
	if p <= 0 {
		return 0
	}
	return time.Duration(slotHash(id)%uint64(p)) * time.Millisecond
}

// NextSlot is the first time at or after t that is the instance's slot:
// k*period + Slot(id, period) for the smallest such k, periods counted from
// the Unix epoch. The store's scripts compute the same.
func NextSlot(id string, period time.Duration, t time.Time) time.Time {
	p := period.Milliseconds()
	if p <= 0 {
		return time.Time{}
	}
	s, at := Slot(id, period).Milliseconds(), t.UnixMilli()
	k := (at - s) / p
	if k*p+s < at {
		k++
	}
	return time.UnixMilli(k*p + s).UTC()
}

// ScheduledRotationID is the id of the scheduled rotation of an instance
// due at due. Deriving it from the due entry makes the enqueue idempotent:
// any sweep that handles the same entry claims the same rotation, which
// the store resumes rather than starting a second, and whose task asynq
// refuses twice (tasks.RotateTaskID). Ids too long for ValidID use a hash
// of the instance id.
func ScheduledRotationID(instanceID string, due time.Time) string {
	id := "sch_" + strconv.FormatInt(due.UnixMilli(), 10) + "_" + instanceID
	if len(id) <= 128 {
		return id
	}
	sum := sha256.Sum256([]byte(instanceID))
	return "sch_" + strconv.FormatInt(due.UnixMilli(), 10) + "_h" + hex.EncodeToString(sum[:20])
}

// RetryAfterFailure is how long after a failed scheduled rotation the
// scheduler tries again: a quarter of the period, at most a day.
func RetryAfterFailure(period time.Duration) time.Duration {
	return min(period/4, 24*time.Hour)
}

// SchedulePolicy is what the scripts that keep the due index need to know
// of the scheduler's configuration. The scheduler publishes it; every
// process reads it from Redis, so a worker or web process that does not
// know REKEY_ROTATION_PERIOD still schedules correctly.
type SchedulePolicy struct {
	// Period is REKEY_ROTATION_PERIOD; 0 means scheduled rotation is off.
	Period time.Duration
	// QuarantineAfter is REKEY_QUARANTINE_AFTER: after this many scheduled
	// rotations in a row fail permanently, the instance is quarantined.
	// 0 means never.
	QuarantineAfter int
	// Published is false when no scheduler has published a policy yet and
	// the defaults apply.
	Published bool
}

// PeriodConflictError is a clock's period refused by PublishSchedulePolicy:
// another clock published a different rotation period, which every script
// that keeps the due index reads. Replacing it would move every instance's
// due time (Reindex) and make the clocks that run with the published
// period rotate the fleet at the wrong pace, so it is done only on purpose
// (SetSchedulePolicy).
type PeriodConflictError struct {
	// Published is the period in Redis; Own is the one refused.
	Published, Own time.Duration
	// PublishedQuarantine is the quarantine limit in Redis, OwnQuarantine
	// the one refused: a clock with the fleet's period but another limit
	// is refused too.
	PublishedQuarantine, OwnQuarantine int
}

func (e *PeriodConflictError) Error() string {
	if e.Published == e.Own {
		return fmt.Sprintf("the fleet's quarantine limit is %d (published by a clock that still runs), not this clock's REKEY_QUARANTINE_AFTER %d",
			e.PublishedQuarantine, e.OwnQuarantine)
	}
	return fmt.Sprintf("the fleet's rotation period is %s (published by a clock that still runs), not this clock's REKEY_ROTATION_PERIOD %s",
		PeriodText(e.Published), PeriodText(e.Own))
}

// PeriodText names a rotation period for people: "2160h (90 days)", or
// "0 (off)".
func PeriodText(d time.Duration) string {
	if d == 0 {
		return "0 (off)"
	}
	return printable.Duration(d)
}

// PublishSchedulePolicy publishes p unless another period is published
// by a clock that still runs: one whose last sweep planned its next less
// than slack before now (a clock that stopped cleanly planned none,
// ClockStopped). It refuses such a different period with
// *PeriodConflictError and changes nothing: a clock started by mistake
// with another environment's period while the real one runs. A clock
// restarted with a new REKEY_ROTATION_PERIOD, the old one stopped,
// publishes it. It reports whether the period changed, in which case the
// caller should Reindex every instance. The compare and the write are one
// step, so of two clocks that start at once with different periods while
// a third runs, neither replaces its period.
func (s *Store) PublishSchedulePolicy(ctx context.Context, p SchedulePolicy, now time.Time, slack time.Duration) (bool, error) {
	return s.publishSchedulePolicy(ctx, p, false, now, slack)
}

// clockMemory is how long the clocks set keeps a clock silent since it
// planned to say it runs again: one that died without stopping cleanly
// (killed, or Redis out of reach as it stopped) is forgotten by the next
// clock that says it runs or stops (clockStoppedScript's 86400000).
const clockMemory = 24 * time.Hour

// ClockAlive records that the clock of token runs and will say so again
// before next, and forgets the clocks silent for clockMemory: those whose
// own next is that long past. Measured from now, not from next, so that a
// clock with a long interval (--interval over a day) does not forget
// clocks that still run.
func (s *Store) ClockAlive(ctx context.Context, token string, next time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, clocksKey(), redis.Z{Score: float64(ms(next)), Member: token})
		p.ZRemRangeByScore(ctx, clocksKey(), "-inf", "("+strconv.FormatInt(ms(s.now().Add(-clockMemory)), 10))
		return nil
	})
	if err != nil {
		return fmt.Errorf("clock alive: %w", err)
	}
	return nil
}

// ClockStopped records that the clock of token stopped cleanly. When no
// other clock runs (none said it was alive less than slack ago), the
// fleet plans no next sweep, so a clock started with another period may
// publish it (PublishSchedulePolicy); while another runs, the period stays
// guarded, whichever clock swept last.
func (s *Store) ClockStopped(ctx context.Context, token string, now time.Time, slack time.Duration) error {
	keys := clockStoppedKeys{clocks: clocksKey(), schedule: scheduleKey()}
	err := clockStoppedScript.Run(ctx, s.rdb, keys.list(), token, ms(now), slack.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("clock stopped: %w", err)
	}
	return nil
}

// SetSchedulePolicy publishes p over whatever policy is published (an
// operator changing the period on purpose: `rekey scheduler --set-period`)
// and reports whether the period changed, in which case the caller should
// Reindex every instance.
func (s *Store) SetSchedulePolicy(ctx context.Context, p SchedulePolicy) (bool, error) {
	return s.publishSchedulePolicy(ctx, p, true, s.now(), 0)
}

func (s *Store) publishSchedulePolicy(ctx context.Context, p SchedulePolicy, replace bool, now time.Time, slack time.Duration) (bool, error) {
	if p.Period < 0 || p.QuarantineAfter < 0 {
		return false, errors.New("schedule policy: period and quarantine limit must not be negative")
	}
	own := p.Period.Milliseconds()
	res, err := publishPolicyScript.Run(ctx, s.rdb, publishPolicyKeys{schedule: scheduleKey(), clocks: clocksKey()}.list(),
		own, p.QuarantineAfter, boolArg(replace), ms(now), slack.Milliseconds()).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("set schedule policy: %w", err)
	}
	published, old := res[0] == 1, res[1]
	if res[2] == 0 {
		return false, &PeriodConflictError{Published: time.Duration(old) * time.Millisecond,
			Own: p.Period.Truncate(time.Millisecond), PublishedQuarantine: int(res[3]), OwnQuarantine: p.QuarantineAfter}
	}
	return !published || old != own, nil
}

// publishPolicyKeys are the KEYS of publishPolicyScript.
type publishPolicyKeys struct {
	schedule string // KEYS[1] -> rekey:schedule
	clocks   string // KEYS[2] -> rekey:clocks
}

func (k publishPolicyKeys) list() []string { return []string{k.schedule, k.clocks} }

// clockStoppedKeys are the KEYS of clockStoppedScript.
type clockStoppedKeys struct {
	clocks   string // KEYS[1] -> rekey:clocks
	schedule string // KEYS[2] -> rekey:schedule
}

func (k clockStoppedKeys) list() []string { return []string{k.clocks, k.schedule} }

// SchedulePolicy returns the published policy, or the defaults.
func (s *Store) SchedulePolicy(ctx context.Context) (SchedulePolicy, error) {
	vals, err := s.rdb.HMGet(ctx, scheduleKey(), "period_ms", "quarantine_after").Result()
	if err != nil {
		return SchedulePolicy{}, fmt.Errorf("get schedule policy: %w", err)
	}
	p := SchedulePolicy{Period: DefaultRotationPeriod, QuarantineAfter: DefaultQuarantineAfter}
	if v, ok := vals[0].(string); ok {
		n, _ := strconv.ParseInt(v, 10, 64)
		p.Period, p.Published = time.Duration(n)*time.Millisecond, true
	}
	if v, ok := vals[1].(string); ok {
		p.QuarantineAfter, _ = strconv.Atoi(v)
	}
	return p, nil
}

// Window is a daily maintenance window in UTC: from Start:00 up to, not
// including, End:00. A window with Start > End spans midnight ("22-04").
type Window struct {
	Start int // 0 to 23
	End   int // 1 to 24
}

// ParseWindow reads "HH-HH", such as "02-05".
func ParseWindow(s string) (Window, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	start, err1 := strconv.Atoi(a)
	end, err2 := strconv.Atoi(b)
	w := Window{Start: start, End: end}
	if !ok || err1 != nil || err2 != nil || w.validate() != nil {
		why := "use HH-HH in UTC, such as 02-05 (22-04 spans midnight)"
		switch {
		case !ok || err1 != nil || err2 != nil || start < 0 || start > 23 || end < 1 || end > 24:
		case start == end:
			// A window runs from its start up to, not including, its end.
			why = fmt.Sprintf("start and end are the same hour, which leaves no hour in it: "+
				"a window runs from its start hour up to its end hour, such as %02d-%02d for the hour from %02d:00", start, start+1, start)
		default: // 0-24
			why = "a whole day is no window: set none to let scheduled rotations start at any hour"
		}
		return Window{}, fmt.Errorf("maintenance window %q is not valid: %s", s, why)
	}
	return w, nil
}

func (w Window) validate() error {
	if w.Start < 0 || w.Start > 23 || w.End < 1 || w.End > 24 || w.Start == w.End || w.Start == 0 && w.End == 24 {
		return fmt.Errorf("maintenance window %d-%d is not valid: hours run 0 to 24, start and end differ, and a whole day is no window", w.Start, w.End)
	}
	return nil
}

// String returns the window as ParseWindow reads it.
func (w Window) String() string { return fmt.Sprintf("%02d-%02d", w.Start, w.End) }

// MarshalText encodes the window as "HH-HH".
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText decodes "HH-HH".
func (w *Window) UnmarshalText(b []byte) error {
	v, err := ParseWindow(string(b))
	*w = v
	return err
}

// Contains reports whether t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	h := t.UTC().Hour()
	if w.Start < w.End {
		return h >= w.Start && h < w.End
	}
	return h >= w.Start || h < w.End
}

// Length is how long the window lasts each day.
func (w Window) Length() time.Duration {
	return time.Duration((w.End-w.Start+24)%24) * time.Hour
}

// NextStart is the first start of the window at or after t.
func (w Window) NextStart(t time.Time) time.Time {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), t.Day(), w.Start, 0, 0, 0, time.UTC)
	if start.Before(t) {
		start = start.AddDate(0, 0, 1)
	}
	return start
}

// RotatesAt is when a scheduled rotation due at due runs under w: at due
// when due falls inside the window; else the scheduler defers it to the
// instance's slot within the window's next opening.
func (w Window) RotatesAt(due time.Time, instanceID string) time.Time {
	if w.Contains(due) {
		return due
	}
	return w.NextStart(due).Add(Slot(instanceID, w.Length()))
}

// NextRotation is when in's next scheduled rotation runs: NextRotationAt
// moved into its maintenance window, its own or else global (nil: none).
// Zero when it is not scheduled.
func (in Instance) NextRotation(global *Window) time.Time {
	w := in.Window
	if w == nil {
		w = global
	}
	if w == nil || in.NextRotationAt.IsZero() {
		return in.NextRotationAt
	}
	return w.RotatesAt(in.NextRotationAt, in.ID)
}

// Schedule is an instance's own scheduling: whether it takes part, and the
// maintenance window it must rotate in (nil: the global one, if any).
type Schedule struct {
	OptOut bool
	Window *Window
}

// SetSchedule sets an instance's schedule. Opting out removes it from the
// due index; opting back in puts it at its next slot, or due at once when
// its credential is older than the period. Errors: ErrNotFound,
// ErrDeprovisioned.
func (s *Store) SetSchedule(ctx context.Context, id string, sc Schedule) error {
	window, detail := "", "default window"
	if sc.Window != nil {
		if err := sc.Window.validate(); err != nil {
			return err
		}
		window, detail = sc.Window.String(), "window "+sc.Window.String()+" UTC"
	}
	if sc.OptOut {
		detail = "opted out"
	}
	keys := setScheduleKeys{instance: instanceKey(id), due: dueKey(), schedule: scheduleKey(),
		instanceEvents: historyKey(id), events: eventsKey()}
	args := []any{id, map[bool]string{true: "1"}[sc.OptOut], window, slotHash(id),
		DefaultRotationPeriod.Milliseconds(), ms(s.now()), s.eventsPerInstance, s.eventsGlobal, detail}
	return scriptError("set schedule of "+id, setScheduleScript.Run(ctx, s.rdb, keys.list(), args...).Err())
}

// setScheduleKeys are the KEYS of setScheduleScript, one field per key, in order.
type setScheduleKeys struct {
	instance       string // KEYS[1] -> rekey:instance:<id>
	due            string // KEYS[2] -> rekey:due
	schedule       string // KEYS[3] -> rekey:schedule
	instanceEvents string // KEYS[4] -> rekey:history:<id>
	events         string // KEYS[5] -> rekey:events
}

func (k setScheduleKeys) list() []string {
	return []string{k.instance, k.due, k.schedule, k.instanceEvents, k.events}
}

// Unquarantine ends an instance's quarantine: its failure streak restarts
// and the scheduler tries it again at its next sweep when its credential
// is older than the period, else at its next slot. It reports whether the
// instance was quarantined. by names who asked, for the audit trail.
func (s *Store) Unquarantine(ctx context.Context, id, by string) (bool, error) {
	keys := unquarantineKeys{instance: instanceKey(id), due: dueKey(), schedule: scheduleKey(),
		quarantined: quarantinedKey(), instanceEvents: historyKey(id), events: eventsKey()}
	args := []any{id, slotHash(id), DefaultRotationPeriod.Milliseconds(), ms(s.now()),
		s.eventsPerInstance, s.eventsGlobal, by}
	res, err := unquarantineScript.Run(ctx, s.rdb, keys.list(), args...).Text()
	if err != nil {
		return false, scriptError("unquarantine "+id, err)
	}
	return res == "ok", nil
}

// unquarantineKeys are the KEYS of unquarantineScript, one field per key,
// in order.
type unquarantineKeys struct {
	instance       string // KEYS[1] -> rekey:instance:<id>
	due            string // KEYS[2] -> rekey:due
	schedule       string // KEYS[3] -> rekey:schedule
	quarantined    string // KEYS[4] -> rekey:quarantined
	instanceEvents string // KEYS[5] -> rekey:history:<id>
	events         string // KEYS[6] -> rekey:events
}

func (k unquarantineKeys) list() []string {
	return []string{k.instance, k.due, k.schedule, k.quarantined, k.instanceEvents, k.events}
}

// Quarantined returns how many instances are quarantined and the ids of up
// to limit of them, longest quarantined first.
func (s *Store) Quarantined(ctx context.Context, limit int64) ([]string, int64, error) {
	return s.QuarantinedFrom(ctx, 0, limit)
}

// CountQuarantined returns how many instances are quarantined: the count
// Quarantined returns, in one command, for /metrics.
func (s *Store) CountQuarantined(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, quarantinedKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("quarantined instances: %w", err)
	}
	return n, nil
}

// QuarantinedFrom is Quarantined from the offset-th quarantined instance
// on, in the set's order, for a walk of the whole set.
func (s *Store) QuarantinedFrom(ctx context.Context, offset, limit int64) ([]string, int64, error) {
	pipe := s.rdb.Pipeline()
	ids := pipe.ZRange(ctx, quarantinedKey(), offset, offset+limit-1)
	n := pipe.ZCard(ctx, quarantinedKey())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("quarantined instances: %w", err)
	}
	return ids.Val(), n.Val(), nil
}
