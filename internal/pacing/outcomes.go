package pacing

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A wave whose every rotation fails for a reason that may pass (the issuer
// answering 5xx or not at all, Heroku's 5xx) gains nothing from the
// budget's pace: each release takes a token for a mint or a push that
// fails, and each failed task then waits out asynq's back-off, which grows
// to hours, so that the wave ends long after the outage. Outcomes counts
// how the runs of bulk rotations end, fleet-wide, and the feeder slows such
// a wave to one release every ProbeEvery (Feeder.failing): the rest stays
// held, costing nothing, and the first probe that rotates, or any other
// bulk run that does, sets the wave going at the budget's pace again. The
// counts are kept in buckets of outcomeBucket, one string key per bucket
// and kind (the package's key list), that expire after outcomesKept, beside
// the streak: the first runs of rotations (no retry of asynq's) that failed
// since the last run that rotated. A wave released faster than a minute's
// look can follow (REKEY_RATE_SCOPE=instance releases as fast as the
// workers take it) slows on the streak, before a minute has passed without
// a rotation. Retries are left out of it: in a partial outage (one issuer
// shard of two down) the retries of the failed half, a dozen each over
// asynq's hours of back-off, outnumber the rotations many times and would
// make streaks of any length.
const (
	// FailingAfter is how many runs of bulk rotations must have failed,
	// with none rotating, within FailingWindow for the wave to slow down.
	FailingAfter = 10
	// FailingStreak is how many first runs of bulk rotations failing one
	// after the other, with no run rotating between them, slow the wave
	// down whatever rotated earlier in the window: a partial outage (every
	// other rotation failing) makes such a streak about once in a million
	// rotations, and the next run that rotates ends it.
	FailingStreak = 20
	// FailingWindow is how far back the feeder looks at the outcomes:
	// longer than the mint's and the push's timeouts, so that a run a slow
	// issuer keeps waiting does not make the window look empty.
	FailingWindow = time.Minute
	// ProbeEvery is how often a slowed feeder releases one rotation.
	ProbeEvery = 15 * time.Second
	// FailingCheck is how often the leading feeder reads the outcomes:
	// one MGET. It reads them too after every failingReleases releases,
	// so that a wave released faster than one every FailingCheck/16 (one
	// without tokens, REKEY_RATE_SCOPE=instance) slows within a few dozen
	// failed rotations.
	FailingCheck    = 5 * time.Second
	failingReleases = 16

	outcomeKey = "rekey:pace:outcome:"
	streakKey  = outcomeKey + "streak"
	outageKey  = outcomeKey + "outage"
	// outageKept is how long an outage's mark stays without a look that
	// finds the wave failing: longer than a rotate task's retries last
	// (about 4.5 hours of asynq's back-off).
	outageKept    = 6 * time.Hour
	outcomeBucket = 10 * time.Second
	outcomesKept  = 2 * FailingWindow
)

// Outcomes records how runs of bulk rotations end (handlers.Deps.Wave).
type Outcomes struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewOutcomes returns Outcomes on rdb, dated by now (nil: time.Now); every
// process should share one clock, Redis's (internal/redisclock), so that
// their buckets agree.
func NewOutcomes(rdb redis.UniversalClient, now func() time.Time) *Outcomes {
	if now == nil {
		now = time.Now
	}
	return &Outcomes{rdb: rdb, now: now}
}

// Record counts one run of a bulk rotation: rotated, or failed (for a
// retry, or for good as the whole wave may: the issuer's 401 or its 4xx to
// a mint, handlers.waveFailure).
// It costs one round trip: an INCR and an EXPIRE of the bucket, and the
// streak's DEL (rotated) or, for a failed first run of its task (not
// retried), its INCR and EXPIRE. Each key's EXPIRE goes with its INCR, so
// that a reply lost after Redis ran them (a read timeout) leaves no key
// without one. Errors are dropped: a run Redis cannot count only makes the
// wave look healthier, which is how rekey paced before it counted.
func (o *Outcomes) Record(ctx context.Context, rotated, retried bool) {
	kind := "failed"
	if rotated {
		kind = "rotated"
	}
	key := outcomeKey + strconv.FormatInt(bucketOf(o.now()), 10) + ":" + kind
	ctx = context.WithoutCancel(ctx)
	_, _ = o.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, key)
		p.Expire(ctx, key, outcomesKept)
		switch {
		case rotated:
			p.Del(ctx, streakKey)
		case !retried:
			p.Incr(ctx, streakKey)
			p.Expire(ctx, streakKey, outcomesKept)
		}
		return nil
	})
}

// Outage reports whether the outage's mark is set: the leading feeder
// found the wave failing, and no run rotated since (Feeder.failing). One
// EXISTS; a Redis error reads as no outage.
func (o *Outcomes) Outage(ctx context.Context) bool {
	n, err := o.rdb.Exists(ctx, outageKey).Result()
	return err == nil && n == 1
}

// bucketOf is the bucket t falls in.
func bucketOf(t time.Time) int64 { return t.UnixMilli() / outcomeBucket.Milliseconds() }

// WaveHealth is what the outcomes of the last FailingWindow say.
type WaveHealth struct {
	// Failed and Rotated count the runs of bulk rotations that failed
	// (Record) and that rotated, in the current bucket and those of the
	// FailingWindow before it.
	Failed, Rotated int64
	// Streak counts the first runs of rotations (no retry of asynq's) that
	// failed since the last run that rotated (within outcomesKept of the
	// last).
	Streak int64
	// Outage is set from a look of the leading feeder that found the wave
	// failing until one finds a run rotated since (Feeder.failing).
	Outage bool
}

// Failing reports whether the wave should slow to a probe: FailingAfter
// runs or more failed and none rotated, or FailingStreak first runs or more
// failed since the last run that rotated, with as many runs failed in the
// window (a streak of failures older than the window is not the wave's now).
// A wave so slowed stays slowed while none rotates and the streak, of
// FailingAfter first runs or more, goes on in the window: its probes, four
// a minute, are all that runs of it, and when they fail for good (the
// issuer's 401 or its 4xx, which asynq does not retry) nothing else fails in the
// window; the wave would otherwise go back to the budget's pace about a
// minute after it slowed, into the same failures.
func (h WaveHealth) Failing() bool {
	return h.Rotated == 0 && (h.Failed >= FailingAfter || h.Failed > 0 && h.Streak >= FailingAfter) ||
		min(h.Streak, h.Failed) >= FailingStreak
}

// ReadWaveHealth reads the outcomes of the window ending at now, the
// streak and the outage's mark, in one MGET.
func ReadWaveHealth(ctx context.Context, rdb redis.UniversalClient, now time.Time) (WaveHealth, error) {
	last := bucketOf(now)
	n := int64(FailingWindow / outcomeBucket)
	keys := make([]string, 0, 2*(n+1)+1)
	for b := last - n; b <= last; b++ {
		prefix := outcomeKey + strconv.FormatInt(b, 10)
		keys = append(keys, prefix+":failed", prefix+":rotated")
	}
	vals, err := rdb.MGet(ctx, append(keys, streakKey, outageKey)...).Result()
	if err != nil {
		return WaveHealth{}, fmt.Errorf("read the wave's outcomes: %w", err)
	}
	var h WaveHealth
	for i, v := range vals {
		s, _ := v.(string)
		c, _ := strconv.ParseInt(s, 10, 64)
		switch {
		case i == len(keys)+1:
			h.Outage = s != ""
		case i == len(keys):
			h.Streak = c
		case i%2 == 0:
			h.Failed += c
		default:
			h.Rotated += c
		}
	}
	return h, nil
}
