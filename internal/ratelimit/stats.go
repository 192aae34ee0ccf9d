package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Stats are a Limiter's counters since New, for export as metrics. Every
// field only grows.
type Stats struct {
	Interactive ClassStats
	Background  ClassStats
	// Denials counts token requests the shared budget refused.
	Denials uint64
	// Backoffs counts pauses this process set after a 429.
	Backoffs uint64
	// Slowdowns counts pauses this process set at low water.
	Slowdowns uint64
	// Unused counts tokens taken from the budget that no caller was left to
	// use (every waiter had gone).
	Unused uint64
	// Errors counts failed Redis calls.
	Errors uint64
	// Prepaid counts Wait calls that used a token paid for before
	// (WithPrepaid) instead of asking the budget.
	Prepaid uint64
}

// ClassStats are the counters of one Class.
type ClassStats struct {
	// Granted counts Wait calls that returned nil.
	Granted uint64
	// Delayed counts Wait calls that returned a *DelayError.
	Delayed uint64
	// Canceled counts Wait calls ended by their context.
	Canceled uint64
	// Waited is the total time granted calls spent in Wait.
	Waited time.Duration
}

// counters back Stats; safe for concurrent use.
type counters struct {
	granted, delayed, canceled [numClasses]atomic.Uint64
	waited                     [numClasses]atomic.Int64
	denials, backoffs          atomic.Uint64
	slowdowns, unused, errors  atomic.Uint64
	prepaid                    atomic.Uint64
}

// record counts the outcome of one Wait.
func (c *counters) record(class Class, err error, waited time.Duration) {
	_, delayed := IsDelay(err)
	switch {
	case err == nil:
		c.granted[class].Add(1)
		c.waited[class].Add(int64(waited))
	case delayed:
		c.delayed[class].Add(1)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		c.canceled[class].Add(1)
	}
}

func (c *counters) class(class Class) ClassStats {
	return ClassStats{
		Granted:  c.granted[class].Load(),
		Delayed:  c.delayed[class].Load(),
		Canceled: c.canceled[class].Load(),
		Waited:   time.Duration(c.waited[class].Load()),
	}
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (l *Limiter) Stats() Stats {
	c := &l.stats
	return Stats{
		Interactive: c.class(Interactive),
		Background:  c.class(Background),
		Denials:     c.denials.Load(),
		Backoffs:    c.backoffs.Load(),
		Slowdowns:   c.slowdowns.Load(),
		Unused:      c.unused.Load(),
		Errors:      c.errors.Load(),
		Prepaid:     c.prepaid.Load(),
	}
}
