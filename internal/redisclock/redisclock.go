// Package redisclock keeps a process's clock on Redis's. Every rekey
// process measures how far its own clock is from Redis's TIME, at start
// and every Interval, and reads the time as its local clock corrected by
// that offset (Clock.Now). A revoke time written by one process and checked
// by another is then compared on one clock, Redis's, whatever the clocks
// of the dynos or VMs they run on say (docs/design.md, I2).
//
// A measurement is one TIME command: the offset is Redis's time less the
// local clock half-way through the round trip, and its uncertainty half the
// round trip. At the default interval that is two commands a minute per
// process, whatever the number of rotations.
package redisclock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// DefaultInterval is how often Run measures the offset again: often enough
// that a clock stepped by NTP, or drifting, is followed within a minute.
const DefaultInterval = 30 * time.Second

// DefaultThreshold is the offset past which a process logs clock_skew:
// beyond what NTP leaves between healthy machines, well under any grace.
const DefaultThreshold = 2 * time.Second

// retryFirst is how soon Run tries again when its first measurement failed:
// a worker waits for that one before it runs tasks (Measured).
const retryFirst = time.Second

// Source answers TIME: a *redis.Client, or any redis.Cmdable.
type Source interface {
	Time(ctx context.Context) *redis.TimeCmd
}

// Params configure a Clock.
type Params struct {
	// Redis answers TIME. Required.
	Redis Source
	// Local is the process's own clock; nil means time.Now. Tests and
	// harnesses that run time skewed or sped up set it.
	Local func() time.Time
	// Interval between measurements in Run; 0 means DefaultInterval.
	Interval time.Duration
	// Threshold is the offset past which clock_skew is logged; 0 means
	// DefaultThreshold.
	Threshold time.Duration
	// Logger gets clock_skew when the offset passes Threshold, and
	// clock_skew_ended when it is back within it.
	Logger zerolog.Logger
	// Redact removes secrets (REDIS_URL's password) from an error's text
	// before it is logged; nil leaves the text as it is.
	Redact func(string) string
}

// Sample is one measurement.
type Sample struct {
	// Offset is Redis's time less the local clock: positive when the
	// local clock is behind.
	Offset time.Duration
	// Uncertainty is half the round trip of the TIME command: the true
	// offset is within Offset ± Uncertainty.
	Uncertainty time.Duration
}

// Clock is the local clock corrected by the last measured offset from
// Redis's. It is safe for concurrent use; Now costs no Redis command.
type Clock struct {
	p           Params
	offset      atomic.Int64 // nanoseconds
	uncertainty atomic.Int64 // nanoseconds
	measured    chan struct{}
	once        sync.Once
	// mu serialises measurements, so that skewed and keptAt tell the truth.
	mu     sync.Mutex
	skewed bool
	keptAt time.Time // local time of the sample kept (better)
}

// New returns a Clock that reads the local clock unchanged until its first
// measurement (Measure, Run).
func New(p Params) (*Clock, error) {
	if p.Redis == nil {
		return nil, errors.New("redisclock: Params.Redis is required")
	}
	if p.Local == nil {
		p.Local = time.Now
	}
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Threshold <= 0 {
		p.Threshold = DefaultThreshold
	}
	if p.Redact == nil {
		p.Redact = func(s string) string { return s }
	}
	return &Clock{p: p, measured: make(chan struct{})}, nil
}

// Now is the local clock plus the last measured offset: Redis's time, to
// within the measurement's uncertainty.
func (c *Clock) Now() time.Time {
	return c.p.Local().Add(time.Duration(c.offset.Load()))
}

// Offset returns the last measured sample, and false before any.
func (c *Clock) Offset() (Sample, bool) {
	select {
	case <-c.measured:
	default:
		return Sample{}, false
	}
	return Sample{Offset: time.Duration(c.offset.Load()), Uncertainty: time.Duration(c.uncertainty.Load())}, true
}

// Measured is closed once a measurement has succeeded.
func (c *Clock) Measured() <-chan struct{} { return c.measured }

// Measure asks Redis for its time once, and corrects Now by the offset
// found, unless the sample is much less sure than the one kept (better).
// It logs clock_skew when the offset passes the threshold, and
// clock_skew_ended when it comes back within it.
func (c *Clock) Measure(ctx context.Context) (Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.p.Local()
	at, err := c.p.Redis.Time(ctx).Result()
	after := c.p.Local()
	if err != nil {
		return Sample{}, fmt.Errorf("read Redis's clock (TIME): %w", err)
	}
	rtt := max(after.Sub(before), 0)
	s := Sample{Offset: at.Sub(before.Add(rtt / 2)), Uncertainty: rtt / 2}
	if !c.better(s, after) {
		return s, nil
	}
	c.offset.Store(int64(s.Offset))
	c.uncertainty.Store(int64(s.Uncertainty))
	c.keptAt = after
	c.report(s)
	c.once.Do(func() { close(c.measured) })
	return s, nil
}

// keepFor is how long a sample stands against later ones much less sure
// than it: a TIME that waited behind a long script in Redis comes back late,
// and taken as it is it would move Now ahead by half that wait.
const keepFor = 5 * time.Minute

// better reports whether sample s, taken at local time at, should replace
// the one kept: the first one always, then one no less than half as sure
// (or within 5 ms); one whose range (offset ± uncertainty) excludes the
// kept one's, since the clock moved (an NTP step) and the kept offset is
// wrong whatever the new one's doubt; or any once the kept one is keepFor
// old, so that a link that became slow for good is followed. Called with
// mu held.
func (c *Clock) better(s Sample, at time.Time) bool {
	kept, ok := c.Offset()
	if !ok {
		return true
	}
	return s.Uncertainty <= max(2*kept.Uncertainty, 5*time.Millisecond) ||
		(s.Offset-kept.Offset).Abs() > s.Uncertainty+kept.Uncertainty ||
		at.Sub(c.keptAt) >= keepFor || at.Before(c.keptAt)
}

// report logs a change between a clock within the threshold and one past
// it. Called with mu held.
func (c *Clock) report(s Sample) {
	skewed := s.Offset.Abs() > c.p.Threshold
	if skewed == c.skewed {
		return
	}
	c.skewed = skewed
	if !skewed {
		c.p.Logger.Info().Int64("offset_ms", s.Offset.Milliseconds()).Msg("clock_skew_ended")
		return
	}
	dir := "behind"
	if s.Offset < 0 {
		dir = "ahead of"
	}
	c.p.Logger.Warn().Int64("offset_ms", s.Offset.Milliseconds()).Int64("uncertainty_ms", s.Uncertainty.Milliseconds()).
		Str("detail", fmt.Sprintf("this machine's clock is %s %s Redis's: rekey corrects for it, keeping revoke "+
			"times on Redis's clock, but fix the machine's time (NTP); asynq still schedules by the local clock, "+
			"so scheduled tasks and retries run early or late by as much", s.Offset.Abs().Round(time.Millisecond), dir)).
		Msg("clock_skew")
}

// Run measures at once, then every Interval until ctx ends. A failed
// measurement keeps the last offset; until the first succeeds, Run tries
// again every second.
func (c *Clock) Run(ctx context.Context) {
	for {
		wait := c.p.Interval
		if _, err := c.Measure(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.p.Logger.Debug().Str("error", c.p.Redact(err.Error())).Msg("clock_measure_failed")
			if _, ok := c.Offset(); !ok {
				wait = retryFirst
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
