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
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Store is what the handlers need of rekey's state (internal/store).
type Store interface {
	Claim(ctx context.Context, r store.RotationRequest) (store.Claim, error)
	Rotation(ctx context.Context, id string) (store.Rotation, error)
	CheckFingerprintKey(ctx context.Context) error
	SavePending(ctx context.Context, instanceID, rotationID, credID string, config map[string]secret.String) error
	DiscardMinted(ctx context.Context, instanceID, rotationID, credID, why string, config []secret.String) error
	PendingConfig(ctx context.Context, instanceID, credID string) (map[string]secret.String, error)
	PromotePushed(ctx context.Context, instanceID, rotationID, credID string, grace time.Duration, detail string, settled int) (store.Promoted, error)
	FailRotation(ctx context.Context, instanceID, rotationID string, f store.Failure) (store.Failed, error)
	MarkPushAttempt(ctx context.Context, rotationID string, to store.PushTarget) error
	SettlePush(ctx context.Context, rotationID string, n int) error
	PushAttempts(ctx context.Context, rotationID string) (attempts, settled int64, err error)
	NoteWait(ctx context.Context, rotationID string, kind store.RotationWait) (int, error)
	Quarantine(ctx context.Context, instanceID, reason string) (bool, error)
	Credential(ctx context.Context, instanceID, credID string) (store.Credential, error)
	IsCurrentConfig(ctx context.Context, instanceID string, config map[string]secret.String) (bool, error)
	NeedsCurrentFingerprint(ctx context.Context, instanceID, credID string) (bool, error)
	LearnCurrentFingerprint(ctx context.Context, instanceID, credID string, config map[string]secret.String) (store.Learned, error)
	NoteCurrentConfigIncomplete(ctx context.Context, instanceID, credID string) (store.Learned, error)
	MarkRevoked(ctx context.Context, instanceID, credID string) error
	// Durable returns once Redis's replicas hold every write acknowledged
	// before it, as REKEY_REDIS_WAIT_REPLICAS asks (store.ErrNotDurable
	// when they do not): called before each step no retry can undo.
	Durable(ctx context.Context) error
	// LiveElsewhere reports whether a credential's config is still another
	// instance's live one (store.Store.LiveElsewhere).
	LiveElsewhere(ctx context.Context, c store.Credential) (bool, error)
	ForgetStrayDue(ctx context.Context, instanceID, credID string) (bool, error)
	AddEvent(ctx context.Context, e store.Event) error
}

// Heroku pushes a credential's config vars to Heroku in one call, reads
// them back when a push's outcome is unknown, and asks for the add-on's
// state after a 403, 404 or 410 (internal/heroku.Client).
type Heroku interface {
	UpdateConfig(ctx context.Context, t heroku.Target, vars []heroku.ConfigVar) error
	GetConfig(ctx context.Context, t heroku.Target) (map[string]secret.String, error)
	AddonState(ctx context.Context, t heroku.Target) (string, error)
}

// Enqueuer schedules follow-up tasks (an *asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// TaskInfos reads asynq's record of a task (an *asynq.Inspector).
type TaskInfos interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
}

// Observer hears how rotations and revocations end, for metrics. Methods
// must be fast and safe for concurrent use.
type Observer interface {
	// Rotation is called once per finished run of a rotate task with one
	// of the Outcome constants.
	Rotation(queue, outcome string)
	// Revocation is called when a previous credential is revoked or its
	// revocation fails for good (RevocationRevoked, RevocationFailed), with
	// how late it was against when it was due: its revoke time, or the end
	// of its hold for one held while in use (store.Credential.DueAt).
	Revocation(outcome string, lag time.Duration)
}

// PushObserver is an Observer that also hears, for each push Heroku
// accepted, how long it took from the rotation's request (the task
// payload's RequestedAt). It is optional so existing Observers keep
// compiling.
type PushObserver interface {
	PushLanded(sinceRequest time.Duration)
}

// IssuerObserver is an Observer that also hears how each call to the
// issuer ended: op is "mint", "verify", "revoke" or "usage", err nil for an
// answer that worked. Optional, as PushObserver is.
type IssuerObserver interface {
	IssuerCall(op string, err error)
}

// Deps are the handlers' dependencies. Store, Heroku, Issuer and Enqueuer
// are required.
type Deps struct {
	Store    Store
	Heroku   Heroku
	Issuer   issuer.Issuer
	Enqueuer Enqueuer
	// Tasks reads asynq's record of a rotate task asked for more than 30
	// days ago whose rotation is not recorded, to tell an archived task run
	// again by hand, which is refused, from one that never ran; nil lets
	// every such task run.
	Tasks TaskInfos
	// Observer hears outcomes; nil means none.
	Observer Observer
	// Breaker hears Heroku's answer to every push; nil means none.
	Breaker Breaker
	// Grace is the default grace period; PrivateSpaceGrace the one for
	// instances in Private Spaces. An instance's own grace, then a request's,
	// override them.
	Grace             time.Duration
	PrivateSpaceGrace time.Duration
	// MinGrace is the grace floor (config.GraceFloor). Producers refuse a
	// shorter grace. A payload from elsewhere (an older producer, one
	// written by hand) that asks for less is not honoured: the instance's
	// own grace applies, as when it asks none (Rotate.honoured). An old
	// instance setting below it is raised to it. Either way no credential
	// is revoked earlier than the floor. Zero applies no floor.
	MinGrace time.Duration
	// MaxGrace is the grace ceiling (config.GraceCeiling). Producers refuse
	// a longer grace; one from elsewhere is lowered to it, so that no old
	// credential outlives it. Zero applies no ceiling.
	MaxGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Local is this machine's own clock, where Now is Redis's clock
	// corrected by a measured offset (redisclock); nil checks Now alone.
	Local func() time.Time
	// Measure, when set, brings Now onto Redis's clock again
	// (redisclock.Clock.Measure) before a revocation is found due.
	Measure func(context.Context) error
	// HoldStore and Holds make a revocation wait while its credential is
	// still in use (hold.go); a nil HoldStore or a zero Holds.Quiet turns
	// holds off.
	HoldStore HoldStore
	Holds     HoldPolicy
	// CustomerLog writes short notices into the app's log stream; nil
	// means none.
	CustomerLog CustomerLog
	// Paid says whether the pacing feeder already took the budget's token
	// for a bulk rotation's push (*pacing.Paid); nil means never.
	Paid Paid
	// Wave hears how each run of a bulk rotation ended, so that the
	// pacing feeder slows a wave whose rotations all fail
	// (*pacing.Outcomes); nil means nobody.
	Wave Wave
}

// Wave records how a run of a bulk rotation ended: rotated, or failed for a
// retry or for good for a reason that may be the whole wave's (the
// issuer's 401, its refusal to mint: waveFailure);
// retried says the run is a retry of asynq's, not its task's first
// (docs/design.md, "Pacing a wave").
type Wave interface {
	Record(ctx context.Context, rotated, retried bool)
	// Outage reports whether the feeder found the wave's rotations all
	// failing and none rotated since (handlers.Rotate.wavesRefusal).
	Outage(ctx context.Context) bool
}

// Paid reports, once, whether a rotation's push token was paid when its
// task was released (docs/design.md, "Pacing a wave").
type Paid interface {
	Take(ctx context.Context, rotationID string) bool
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// untilRevokeAt is how long c's revocation must still wait: until its
// revoke time has passed on Redis's clock (Now) and on this machine's own
// (Local) both. Redis's clock stepped ahead (a wrong NTP source, a
// failover to a replica whose clock is off) is followed at the next
// measurement, and every revoke time within the step then read as passed:
// credentials whose grace had not ended were revoked under the apps still
// running on them. A machine's clock behind Redis's only makes the
// revocation late, by as much as asynq, forwarding by that clock, already
// does (I2). An expedited revoke time is Redis's "now" by a customer's or
// an operator's choice, and waits for no machine's clock.
//
// Found due, Redis's clock is measured once more (Measure): the machine's
// clock stepped ahead since the last measurement, up to 30 s before, had
// both clocks read the revoke time as passed, and asynq, forwarding by
// that clock, hands the worker every revocation within the step. One TIME
// a revocation, beside the issuer's DELETE; a failed one is retried, not
// guessed past.
func (d *Deps) untilRevokeAt(ctx context.Context, c store.Credential) (time.Duration, error) {
	wait := d.waitFor(c)
	if wait > 0 || d.Measure == nil {
		return wait, nil
	}
	if err := d.Measure(ctx); err != nil {
		return 0, fmt.Errorf("revoke %s: %w", c.ID, err)
	}
	return d.waitFor(c), nil
}

func (d *Deps) waitFor(c store.Credential) time.Duration {
	wait := c.RevokeAt.Sub(d.now())
	if d.Local != nil && c.ExpeditedAt.IsZero() {
		wait = max(wait, c.RevokeAt.Sub(d.Local()))
	}
	return wait
}

func (d *Deps) observeRotation(ctx context.Context, queue, outcome string, waveFailed bool) {
	if d.Observer != nil {
		d.Observer.Rotation(queue, outcome)
	}
	// Only a rotation, a failure that asynq retries and a permanent one
	// that may be the whole wave's (waveFailure: the issuer refusing
	// rekey's signature or refusing to mint, where the rest of the wave
	// would fail so one by one) say anything of the issuer's and Heroku's
	// health, and so does a run put off by the token endpoint's 429, which
	// no shared pause covers: a wait for the budget, a join or any other
	// permanent failure (one instance's) do not.
	failed := outcome == OutcomeRetry || (outcome == OutcomeFailed || outcome == OutcomeRateLimited) && waveFailed
	if d.Wave != nil && queue == tasks.QueueBulk && (outcome == OutcomeRotated || failed) {
		n, _ := asynq.GetRetryCount(ctx)
		d.Wave.Record(ctx, outcome == OutcomeRotated, n > 0)
	}
}

// observePushLanded tells a PushObserver how long a rotation requested at
// requestedAt took to reach Heroku; a payload without a request time is
// not measured.
func (d *Deps) observePushLanded(requestedAt time.Time) {
	if o, ok := d.Observer.(PushObserver); ok && !requestedAt.IsZero() {
		o.PushLanded(d.now().Sub(requestedAt))
	}
}

// observeIssuer tells an IssuerObserver how a call to the issuer ended.
func (d *Deps) observeIssuer(op string, err error) {
	if o, ok := d.Observer.(IssuerObserver); ok {
		o.IssuerCall(op, err)
	}
}

// Register wires every task type into mux, behind the logging middleware;
// the mux's own other types still reach their handlers (rekeyTypesOnly).
func Register(mux *asynq.ServeMux, d *Deps) error {
	if d.Store == nil || d.Heroku == nil || d.Issuer == nil || d.Enqueuer == nil {
		return errors.New("handlers: Store, Heroku, Issuer and Enqueuer are required")
	}
	mux.Use(Logging, rekeyTypesOnly(mux))
	mux.Handle(tasks.TypeRotate, &Rotate{deps: d})
	mux.Handle(tasks.TypeRevoke, &Revoke{deps: d})
	return nil
}

// NewMux returns a ServeMux with every task type registered (Register),
// ready for internal/worker.
func NewMux(d *Deps) (*asynq.ServeMux, error) {
	mux := asynq.NewServeMux()
	if err := Register(mux, d); err != nil {
		return nil, err
	}
	return mux, nil
}

// RetryLaterError asks asynq to run the task again after a delay without
// counting a failure. It is the retry contract's retry.Later, named here so
// the handlers read as before.
type RetryLaterError = retry.Later

// IsFailure is asynq.Config.IsFailure (retry.IsFailure).
func IsFailure(err error) bool { return retry.IsFailure(err) }

// RetryDelay is asynq.Config.RetryDelayFunc (retry.Delay).
func RetryDelay(n int, err error, t *asynq.Task) time.Duration { return retry.Delay(n, err, t) }

// permanent marks err so asynq archives the task instead of retrying it.
func permanent(err error) error { return retry.Permanent(err) }

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
