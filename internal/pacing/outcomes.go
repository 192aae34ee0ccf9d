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
// and kind (the package's key list), that expire after outcomesKept.
const (
	// FailingAfter is how many runs of bulk rotations must have failed,
	// with none rotating, within FailingWindow for the wave to slow down.
	FailingAfter = 10
	// FailingWindow is how far back the feeder looks at the outcomes:
	// longer than the mint's and the push's timeouts, so that a run a slow
	// issuer keeps waiting does not make the window look empty.
	FailingWindow = time.Minute
	// ProbeEvery is how often a slowed feeder releases one rotation.
	ProbeEvery = 15 * time.Second
	// FailingCheck is how often the leading feeder reads the outcomes:
	// one MGET.
	FailingCheck = 5 * time.Second

	outcomeKey    = "rekey:pace:outcome:"
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

// Record counts one run of a bulk rotation: rotated, or failed for a retry.
// It costs one INCR, and an EXPIRE for the first run of a bucket. Errors
// are dropped: a run Redis cannot count only makes the wave look healthier,
// which is how rekey paced before it counted.
func (o *Outcomes) Record(ctx context.Context, rotated bool) {
	kind := "failed"
	if rotated {
		kind = "rotated"
	}
	key := outcomeKey + strconv.FormatInt(bucketOf(o.now()), 10) + ":" + kind
	ctx = context.WithoutCancel(ctx)
	if n, err := o.rdb.Incr(ctx, key).Result(); err == nil && n == 1 {
		_ = o.rdb.Expire(ctx, key, outcomesKept).Err()
	}
}

// bucketOf is the bucket t falls in.
func bucketOf(t time.Time) int64 { return t.UnixMilli() / outcomeBucket.Milliseconds() }

// WaveHealth is what the outcomes of the last FailingWindow say.
type WaveHealth struct {
	// Failed and Rotated count the runs of bulk rotations that failed for
	// a retry and that rotated, in the current bucket and those of the
	// FailingWindow before it.
	Failed, Rotated int64
}

// Failing reports whether the wave should slow to a probe: FailingAfter
// runs or more failed and none rotated.
func (h WaveHealth) Failing() bool { return h.Failed >= FailingAfter && h.Rotated == 0 }

// ReadWaveHealth reads the outcomes of the window ending at now, in one
// MGET.
func ReadWaveHealth(ctx context.Context, rdb redis.UniversalClient, now time.Time) (WaveHealth, error) {
	last := bucketOf(now)
	n := int64(FailingWindow / outcomeBucket)
	keys := make([]string, 0, 2*(n+1))
	for b := last - n; b <= last; b++ {
		prefix := outcomeKey + strconv.FormatInt(b, 10)
		keys = append(keys, prefix+":failed", prefix+":rotated")
	}
	vals, err := rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return WaveHealth{}, fmt.Errorf("read the wave's outcomes: %w", err)
	}
	var h WaveHealth
	for i, v := range vals {
		s, _ := v.(string)
		c, _ := strconv.ParseInt(s, 10, 64)
		if i%2 == 0 {
			h.Failed += c
		} else {
			h.Rotated += c
		}
	}
	return h, nil
}
