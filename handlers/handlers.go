// Package handlers runs rekey's tasks: one file per task type, each a struct
// with its dependencies and a ProcessTask method, and Register, which wires
// them and the middleware into an asynq.ServeMux.
//
// Handlers depend on small interfaces, not on Redis or HTTP. They never
// loop or sleep to retry: a transient failure is returned and asynq retries
// it; a permanent one wraps asynq.SkipRetry; waiting for Heroku's budget is
// a *RetryLaterError, which IsFailure says is no failure, so it never uses
// up a task's retries.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Store is what the handlers need of rekey's state (internal/store).
type Store interface {
	Claim(ctx context.Context, r store.RotationRequest) (store.Claim, error)
	SavePending(ctx context.Context, instanceID, rotationID, credID string, config map[string]secret.String) error
	PendingConfig(ctx context.Context, instanceID, credID string) (map[string]secret.String, error)
	Promote(ctx context.Context, instanceID, rotationID, credID string, grace time.Duration, detail string) (*store.Revocation, error)
	Fail(ctx context.Context, instanceID, rotationID, code, cause string) (*store.Revocation, error)
	MarkPushAttempt(ctx context.Context, rotationID string) error
	Deprovision(ctx context.Context, instanceID string) error
	Credential(ctx context.Context, instanceID, credID string) (store.Credential, error)
	MarkRevoked(ctx context.Context, instanceID, credID string) error
	AddEvent(ctx context.Context, e store.Event) error
}

// Heroku pushes a credential's config vars to Heroku in one call, and reads
// them back when an earlier push's outcome is unknown (internal/heroku.Client).
type Heroku interface {
	UpdateConfig(ctx context.Context, t heroku.Target, vars []heroku.ConfigVar) error
	GetConfig(ctx context.Context, t heroku.Target) (map[string]secret.String, error)
}

// Enqueuer schedules follow-up tasks (an *asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Observer hears how rotations and revocations end, for metrics. Methods
// must be fast and safe for concurrent use.
type Observer interface {
	// Rotation is called once per finished run of a rotate task: outcome is
	// "rotated", "already_done", "joined", "skipped", "failed", "retry" or "rate_limited".
	Rotation(queue, outcome string)
	// Revocation is called when a credential is revoked, with how late it
	// was against its revoke time.
	Revocation(outcome string, lag time.Duration)
}

// Deps are the handlers' dependencies. Store, Heroku, Issuer and Enqueuer
// are required.
type Deps struct {
	Store    Store
	Heroku   Heroku
	Issuer   issuer.Issuer
	Enqueuer Enqueuer
	// Observer hears outcomes; nil means none.
	Observer Observer
	// Grace is the default grace period; PrivateSpaceGrace the one for
	// instances in Private Spaces. An instance's own grace, then a request's,
	// override them.
	Grace             time.Duration
	PrivateSpaceGrace time.Duration
	// MinGrace is the grace floor (config.GraceFloor). Producers refuse a
	// shorter grace; a payload from elsewhere (tasks/, an old instance
	// setting) that asks for less is raised to it, so no credential is
	// revoked earlier than the floor. Zero applies no floor.
	MinGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deps) observeRotation(queue, outcome string) {
	if d.Observer != nil {
		d.Observer.Rotation(queue, outcome)
	}
}

// Register wires every task type into mux, behind the logging middleware.
func Register(mux *asynq.ServeMux, d *Deps) error {
	if d.Store == nil || d.Heroku == nil || d.Issuer == nil || d.Enqueuer == nil {
		return errors.New("handlers: Store, Heroku, Issuer and Enqueuer are required")
	}
	mux.Use(Logging)
	mux.Handle(tasks.TypeRotate, &Rotate{deps: d})
	mux.Handle(tasks.TypeRevoke, &Revoke{deps: d})
	return nil
}

// RetryLaterError asks asynq to run the task again after a delay without
// counting a failure: the task waits for Heroku's budget, or for a revoke
// time that has not come.
type RetryLaterError struct {
	After  time.Duration
	Reason string
}

// retryLaterPrefix starts every RetryLaterError's message, so that a task's
// last error tells whether its last run was waiting (IsWaiting).
const retryLaterPrefix = "retry in "

func (e *RetryLaterError) Error() string {
	return fmt.Sprintf("%s%s: %s", retryLaterPrefix, e.After.Round(time.Millisecond), e.Reason)
}

// IsWaiting reports whether lastErr, a task's last error as asynq keeps it
// (TaskInfo.LastErr), is a RetryLaterError. asynq archives a task whose
// retries are used up even when its last run was only waiting; such a task
// did not fail, and the reconcile sweep runs it again.
func IsWaiting(lastErr string) bool { return strings.HasPrefix(lastErr, retryLaterPrefix) }

// IsFailure is asynq.Config.IsFailure: waiting is not failing, and neither
// is a worker that died under a task (asynq recovers the task when its
// lease expires): neither uses up the task's retries.
func IsFailure(err error) bool {
	var later *RetryLaterError
	return !errors.As(err, &later) && !errors.Is(err, asynq.ErrLeaseExpired)
}

// leaseExpiredDelay is how soon a task whose worker died runs again. asynq
// recovers it only after its lease has been expired for 30 s, so there is
// nothing more to wait for.
const leaseExpiredDelay = time.Second

// RetryDelay is asynq.Config.RetryDelayFunc: a RetryLaterError's own delay
// (with a little jitter, so waiting tasks do not return all at once), a
// second for a task whose worker died, else asynq's exponential back-off.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	var later *RetryLaterError
	switch {
	case errors.As(err, &later):
		jitter := time.Duration(rand.Int64N(int64(later.After/10) + 1))
		return later.After + jitter
	case errors.Is(err, asynq.ErrLeaseExpired):
		return leaseExpiredDelay
	}
	return asynq.DefaultRetryDelayFunc(n, err, t)
}

// permanent marks err so asynq archives the task instead of retrying it.
func permanent(err error) error { return fmt.Errorf("%w (%w)", err, asynq.SkipRetry) }

// enqueueRevoke schedules the revocation of r; an existing task for it
// counts as success.
func (d *Deps) enqueueRevoke(ctx context.Context, r *store.Revocation) error {
	if r == nil {
		return nil
	}
	t, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: r.InstanceID, CredentialID: r.CredentialID}, r.RevokeAt)
	if err != nil {
		return err
	}
	_, err = d.Enqueuer.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("schedule revoke of %s: %w", r.CredentialID, err)
	}
	return nil
}
