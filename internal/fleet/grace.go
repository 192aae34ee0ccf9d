package fleet

import (
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/tasks"
)

// DefaultMinGrace is the grace floor of a Producer built without
// WithMinGrace: REKEY_MIN_GRACE's default, which the tasks package checks
// another app's rotate tasks against.
const DefaultMinGrace = tasks.MinGrace

// DefaultMaxGrace is the grace ceiling of a Producer built without
// WithMaxGrace: REKEY_MAX_GRACE's default.
const DefaultMaxGrace = 7 * 24 * time.Hour

// GraceError is a requested grace shorter than the floor or longer than
// the ceiling. A request that carries one is refused whole, before
// anything is claimed or enqueued.
type GraceError struct {
	// Grace is what was asked for; Floor and Ceiling the shortest and the
	// longest grace accepted.
	Grace, Floor, Ceiling time.Duration
}

func (e *GraceError) Error() string {
	if e.Ceiling > 0 && e.Grace > e.Ceiling {
		return fmt.Sprintf("grace %s is longer than the ceiling of %s (REKEY_MAX_GRACE): "+
			"the old credential would stay valid that long after the rotation", e.Grace, e.Ceiling)
	}
	return fmt.Sprintf("grace %s is shorter than the floor of %s (REKEY_MIN_GRACE, or REKEY_GRACE when lower): "+
		"an old credential must stay valid long enough for every dyno to restart", e.Grace, e.Floor)
}

// CheckGrace returns a *GraceError when a grace was asked for (d > 0) and
// is shorter than floor or longer than ceiling (0: none). Zero means "the
// instance's own grace" and passes.
func CheckGrace(d, floor, ceiling time.Duration) error {
	if d > 0 && (d < floor || ceiling > 0 && d > ceiling) {
		return &GraceError{Grace: d, Floor: floor, Ceiling: ceiling}
	}
	return nil
}

// Option configures a Producer.
type Option func(*Producer)

// WithMinGrace sets the grace floor: a Request.Grace shorter than it is
// refused with a *GraceError. Production passes config.GraceFloor; zero or
// less keeps DefaultMinGrace.
func WithMinGrace(floor time.Duration) Option {
	return func(p *Producer) {
		if floor > 0 {
			p.minGrace = floor
		}
	}
}

// MinGrace returns the producer's grace floor.
func (p *Producer) MinGrace() time.Duration { return p.minGrace }

// WithMaxGrace sets the grace ceiling: a Request.Grace longer than it is
// refused with a *GraceError. Production passes config.GraceCeiling; zero
// or less keeps DefaultMaxGrace.
func WithMaxGrace(ceiling time.Duration) Option {
	return func(p *Producer) {
		if ceiling > 0 {
			p.maxGrace = ceiling
		}
	}
}

// MaxGrace returns the producer's grace ceiling.
func (p *Producer) MaxGrace() time.Duration { return p.maxGrace }
