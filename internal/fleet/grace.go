package fleet

import (
	"fmt"
	"time"
)

// DefaultMinGrace is the grace floor of a Producer built without
// WithMinGrace: REKEY_MIN_GRACE's default.
const DefaultMinGrace = 10 * time.Minute

// GraceError is a requested grace shorter than the floor. A request that
// carries one is refused whole, before anything is claimed or enqueued.
type GraceError struct {
	// Grace is what was asked for; Floor the shortest grace accepted.
	Grace, Floor time.Duration
}

func (e *GraceError) Error() string {
	return fmt.Sprintf("grace %s is shorter than the floor of %s (REKEY_MIN_GRACE, or REKEY_GRACE when lower): "+
		"an old credential must stay valid long enough for every dyno to restart", e.Grace, e.Floor)
}

// CheckGrace returns a *GraceError when a grace was asked for (d > 0) and
// is shorter than floor. Zero means "the instance's own grace" and passes.
func CheckGrace(d, floor time.Duration) error {
	if d > 0 && d < floor {
		return &GraceError{Grace: d, Floor: floor}
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
