// Package retry is rekey's retry contract: how a task handler says "run me
// again later, this is no failure" (Later), how the asynq server counts and
// delays such runs (IsFailure, Delay), and how the reconcile sweep learns
// why asynq archived a task (Record, Classify) and what time a retrying task
// waits for (Record, WaitsFor).
//
// It is a leaf: it imports asynq and the standard library only, so handlers,
// the worker and the sweep agree on typed values instead of on the text of
// an error. Nothing in rekey parses an error's message.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Later asks asynq to run the task again after After without counting a
// failure: the task waits for Heroku's budget, or for a revoke time that has
// not come. Reason is a fixed sentence of rekey's own (never a party's
// text); it reaches logs and asynqmon.
type Later struct {
	After  time.Duration
	Reason string
	// Until is the time the task waits for when that time is rekey's own
	// and may be brought forward while the task waits (a revoke time, on
	// Redis's clock: an expedite moves it to now); zero for any other wait
	// (Heroku's budget, a hold's re-check). Record notes it in the task's
	// result for WaitsFor, so that the reconcile sweep can run the task
	// once the time it waits for has moved earlier.
	Until time.Time
}

// Error says how long the task waits and why, for people.
func (e *Later) Error() string {
	return fmt.Sprintf("retry in %s: %s", e.After.Round(time.Millisecond), e.Reason)
}

// IsLater reports whether err is, or wraps, a *Later.
func IsLater(err error) bool {
	var later *Later
	return errors.As(err, &later)
}

// IsFailure is asynq.Config.IsFailure: waiting is not failing, and neither
// is a worker that died under a task (asynq recovers the task when its
// lease expires): neither uses up the task's retries.
func IsFailure(err error) bool {
	return !IsLater(err) && !errors.Is(err, asynq.ErrLeaseExpired)
}

// untilJitter bounds the jitter of a wait for a time of rekey's own
// (Later.Until, a revoke time). The time is when the work is due, and a
// task run by hand hours before it (asynq's "Run now" on a scheduled revoke
// task) waits all those hours: a tenth of them would keep the credential
// valid that long past its grace, and the sweep leaves a task waiting for
// its revocation's own time alone (WaitsFor).
const untilJitter = time.Second

// leaseExpiredDelay is how soon a task whose worker died runs again. asynq
// recovers it only after its lease has been expired for 30 s, so there is
// nothing more to wait for.
const leaseExpiredDelay = time.Second

// FastRetries is how many failed runs in a row of one task are retried
// within seconds (FastDelay) before asynq's exponential back-off takes
// over. A transient Heroku or issuer 5xx or timeout in the middle of a wave
// then costs seconds, not minutes, while a persistent outage still backs
// off (and the circuit breaker, internal/breaker, pauses the wave). Each
// fast retry still waits for the shared budget before it calls Heroku.
const FastRetries = 3

// FastDelay is the delay before fast retry n (0-based): 1 s, 2 s, 4 s, each
// with up to a second more of jitter so failed tasks do not return together.
func FastDelay(n int) time.Duration {
	return time.Second<<n + time.Duration(rand.Int64N(int64(time.Second)))
}

// ErrConfirm marks the error of a run that the issuer refused and that is
// asked again once, ConfirmAfter later, before its rotation fails for good
// (handlers.Rotate.wavesRefusal): an issuer refusing every mint of a
// wave must first be seen by the pacing feeder, which slows the wave, and
// a refusal of one instance's ends at the second answer.
var ErrConfirm = errors.New("asked again in a minute, in case the issuer refuses the whole wave")

// ConfirmAfter is how long a run marked ErrConfirm waits, with up to a
// sixth more of jitter: a minute, the pacing feeder's window. An issuer
// refusing every mint of a wave has been seen failing by then at the
// default budget: ten refusals, or twenty in a row when rotations went
// through in the minute before, take about 18 s at 4,000 calls an hour.
const ConfirmAfter = time.Minute

// AgainDelay is how long a rotation's run waits before it sends again a
// push that Heroku answered with a 5xx or did not answer, the rotation's
// first such push, within the same run: 250 to 750 ms. That is less than
// one budget interval at the default REKEY_HEROKU_RATE (900 ms), so at a
// wave's end the push sent again takes the budget's next token instead of
// leaving it idle while the task waits out FastDelay and asynq's polls; the
// jitter keeps pushes that failed together from returning together.
func AgainDelay() time.Duration {
	return 250*time.Millisecond + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
}

// Delay is asynq.Config.RetryDelayFunc: a Later's own delay (with up to a
// tenth more of jitter, so waiting tasks do not return all at once, and at
// most untilJitter more for a wait for a time of rekey's own), a second for
// a task whose worker died, ConfirmAfter for a refusal asked again
// (ErrConfirm), FastDelay for the first FastRetries failures of a task,
// else asynq's exponential back-off. n is how many times asynq has retried
// the task after failures.
func Delay(n int, err error, t *asynq.Task) time.Duration {
	var later *Later
	switch {
	case errors.As(err, &later):
		spread := later.After / 10
		if !later.Until.IsZero() {
			spread = min(spread, untilJitter)
		}
		return later.After + time.Duration(rand.Int64N(int64(spread)+1))
	case errors.Is(err, asynq.ErrLeaseExpired):
		return leaseExpiredDelay
	case errors.Is(err, ErrConfirm):
		return ConfirmAfter + time.Duration(rand.Int64N(int64(ConfirmAfter/6)))
	case n < FastRetries:
		return FastDelay(n)
	}
	return asynq.DefaultRetryDelayFunc(n, err, t)
}

// Permanent marks err so asynq archives the task at once instead of
// retrying it: retrying cannot help.
func Permanent(err error) error { return fmt.Errorf("%w (%w)", err, asynq.SkipRetry) }

// Sleep waits d between two attempts, or until ctx is done, whose error it
// then returns.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
