package handlers

import (
	"context"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/store"
)

// Waits after Heroku's token endpoint answered 429 to the refresh a run of
// a rotation needed. The Platform API's 429s pause the shared budget, which
// backs off by itself (internal/ratelimit); the token endpoint's are no
// part of that budget (Heroku counts Platform API calls only), and pausing
// every push for them would stop V1 pushes and interactive work alike. So
// each rotation backs off on its own: the n-th 429 of a rotation waits
// tokenWait(n), or longer when Heroku's Retry-After asks for it, and asynq
// adds up to a tenth of jitter to each wait (retry.Delay). After
// maxTokenWaits of them, about 26 minutes of waiting, the 429 fails the
// run like any transient error: asynq's retries, with their back-off and
// their limit, take over, and an endpoint that never recovers ends the
// rotation. A bulk run so put off counts as the wave's failed run
// (Deps.observeRotation), so that a token endpoint turning the whole wave
// away slows it to a probe.
const (
	tokenWaitFirst = 5 * time.Second
	tokenWaitMax   = 5 * time.Minute
	maxTokenWaits  = 10
)

// tokenWait is the wait after a rotation's n-th 429 (from 1) from the
// token endpoint: doubling from tokenWaitFirst, at most tokenWaitMax.
func tokenWait(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 16 {
		return tokenWaitMax
	}
	return min(tokenWaitFirst<<(n-1), tokenWaitMax)
}

// tokenLater counts the token endpoint's 429 against the rotation and
// returns its wait, or nil once the rotation's waits are used up, or when
// they cannot be counted (Redis failing): the run then fails as transient,
// so no rotation waits without end.
func (h *Rotate) tokenLater(ctx context.Context, r *rotation, rl *heroku.RateLimitError) *RetryLaterError {
	n, err := h.deps.Store.NoteWait(ctx, r.p.RotationID, store.WaitToken)
	if err != nil || n < 1 || n > maxTokenWaits {
		r.log.Warn().Int("token_429", n).Msg("token_rate_limited_too_long")
		return nil
	}
	// The wave's failure: the feeder slows a wave whose refreshes are all
	// turned away rather than release the rest into them at the budget's
	// pace, each one more rotation asking the token endpoint again.
	r.waveFailed = true
	return &RetryLaterError{After: max(tokenWait(n), rl.RetryAfter), Reason: "Heroku's token endpoint answered 429 rate_limit"}
}

// maxPlatformWaits is how many of the Platform API's 429s one rotation
// waits out, each for its Retry-After (5 s without one), before the next
// fails the run like any transient error. The shared budget pauses every
// process after a 429 (internal/ratelimit), so a rotation meets few of
// them while Heroku recovers; one that meets more is refused by something
// that does not recover (a front answering 429 to one add-on for good),
// and waiting on would keep the rotation in flight, and every request for
// the instance joined to it (I4), for ever.
const maxPlatformWaits = 10

// platformLater counts the Platform API's 429 against the rotation and
// returns its wait, or nil once the rotation's waits are used up or cannot
// be counted.
func (h *Rotate) platformLater(ctx context.Context, r *rotation, rl *heroku.RateLimitError) *RetryLaterError {
	n, err := h.deps.Store.NoteWait(ctx, r.p.RotationID, store.WaitPlatform)
	if err != nil || n < 1 || n > maxPlatformWaits {
		r.log.Warn().Int("api_429", n).Msg("heroku_rate_limited_too_long")
		return nil
	}
	after := rl.RetryAfter
	if after <= 0 {
		after = 5 * time.Second
	}
	return &RetryLaterError{After: after, Reason: "Heroku answered 429 rate_limit"}
}

// maxReadBackWaits is how many times a rotation that failed after a push
// puts off reading Heroku's config back because of a 429 or the shared
// budget (end, and a rerun resuming at the read: landedBefore). A read-back
// put off for good would otherwise keep the rotation in flight for ever.
// After these the run pushes once more and the failure is recorded without
// the read, the credential kept unconfirmed (I1).
const maxReadBackWaits = 3

// readBackLater returns the wait for a read-back put off by err, or nil
// once the rotation's read-back waits are used up or cannot be counted.
func (h *Rotate) readBackLater(ctx context.Context, r *rotation, err error) *RetryLaterError {
	n, nerr := h.deps.Store.NoteWait(ctx, r.p.RotationID, store.WaitReadBack)
	if nerr != nil || n < 1 || n > maxReadBackWaits {
		r.log.Warn().Int("readback_waits", n).Msg("read_back_put_off_too_long")
		return nil
	}
	return h.retryLater(ctx, r, err)
}
