package scheduler

import (
	"context"
	"errors"
	"io"
	"net"
)

// stepError is a sweep's error with the step it failed at: "policy"
// (reading the policy, the pause or the breaker), "lock", "backlog",
// "due_index", "instances", "due_entry" (taking, deferring or dropping a
// due entry, or claiming its rotation) or "enqueue".
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return "sweep " + e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// wrapStep names the step err failed at, unless a step nearer the failure
// named it already. A nil err stays nil.
func wrapStep(step string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*stepError](err); ok {
		return err
	}
	return &stepError{step: step, err: err}
}

// ErrorClass names a failed sweep's error in rekey's own words, never its
// text (which may quote what was sent to Redis): the step it failed at,
// then what went wrong, such as "due_index: redis_error". What went wrong
// is one of:
//   - timeout: Redis or the queue did not answer in time;
//   - redis_error: Redis answered with an error (a command it refuses, a
//     full or read-only Redis);
//   - connection: the connection failed or was closed;
//   - error: anything else.
func ErrorClass(err error) string {
	step := "sweep"
	if e, ok := errors.AsType[*stepError](err); ok {
		step = e.step
	}
	var answered interface{ RedisError() } // go-redis's redis.Error: Redis's own answer
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return step + ": timeout"
	case errors.As(err, &answered):
		return step + ": redis_error"
	case errors.As(err, &netErr) && netErr.Timeout():
		return step + ": timeout"
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return step + ": connection"
	}
	return step + ": error"
}
