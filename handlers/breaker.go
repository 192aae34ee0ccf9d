package handlers

import "context"

// Breaker hears Heroku's answer to every push, success included, so that
// a run of 401 or 403 answers across many instances (an account-level
// problem, such as a rotated OAuth client secret or a suspended partner)
// can pause bulk and scheduled work instead of failing the fleet one
// instance at a time (internal/breaker). Observe must be safe for
// concurrent use and must not fail the rotation: it returns nothing.
type Breaker interface {
	// Observe records the answer to one push of instanceID's config: err
	// is nil when Heroku accepted it.
	Observe(ctx context.Context, instanceID string, err error)
}

// observePush tells the breaker, if any, how Heroku answered a push.
func (d *Deps) observePush(ctx context.Context, instanceID string, err error) {
	if d.Breaker != nil {
		d.Breaker.Observe(ctx, instanceID, err)
	}
}
