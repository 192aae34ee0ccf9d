package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// ErrClosed is returned by Wait once the Limiter is closed.
var ErrClosed = errors.New("ratelimit: limiter closed")

// DelayError says that the budget cannot grant a call within Params.MaxWait.
// It is not a failure: the caller should run the work again after RetryIn,
// without counting an attempt.
type DelayError struct {
	// RetryIn is the expected wait for a token, at least one emission
	// interval.
	RetryIn time.Duration
}

func (e *DelayError) Error() string {
	return fmt.Sprintf("ratelimit: no Heroku call budget within MaxWait, retry in %s", e.RetryIn.Round(time.Millisecond))
}

// IsDelay reports whether err is or wraps a *DelayError, and its RetryIn.
func IsDelay(err error) (time.Duration, bool) {
	var d *DelayError
	if errors.As(err, &d) {
		return d.RetryIn, true
	}
	return 0, false
}
