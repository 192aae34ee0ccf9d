package handlers

import (
	"context"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
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
// rotation.
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
	n, err := h.deps.Store.NoteTokenRateLimited(ctx, r.p.RotationID)
	if err != nil || n < 1 || n > maxTokenWaits {
		r.log.Warn().Int("token_429", n).Msg("token_rate_limited_too_long")
		return nil
	}
	return &RetryLaterError{After: max(tokenWait(n), rl.RetryAfter), Reason: "Heroku's token endpoint answered 429 rate_limit"}
}
