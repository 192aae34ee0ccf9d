package handlers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Rotate runs tasks.TypeRotate: claim the rotation, mint (or reload) its
// credential, verify it, push it to Heroku in one call, promote it and
// schedule the old credential's revocation. Every step is idempotent, so
// the task may run twice, or twice at once (DESIGN.md, I6).
type Rotate struct{ deps *Deps }

// rotation is one run of a rotate task.
type rotation struct {
	p     tasks.RotatePayload
	queue string
	claim store.Claim
	log   zerolog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *Rotate) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseRotate(t)
	if err != nil {
		return permanent(err)
	}
	queue, _ := asynq.GetQueueName(ctx)
	r := &rotation{p: p, queue: queue,
		log: zerolog.Ctx(ctx).With().Str("instance_id", p.InstanceID).Str("rotation_id", p.RotationID).Logger()}
	outcome, err := h.run(ctx, r)
	h.deps.observeRotation(queue, outcome)
	return err
}

// request is the claim a run of the task makes.
func (r *rotation) request() store.RotationRequest {
	return store.RotationRequest{InstanceID: r.p.InstanceID, RotationID: r.p.RotationID,
		BatchID: r.p.BatchID, Reason: r.p.Reason, Queue: r.queue, Grace: time.Duration(r.p.Grace),
		SkipIfPrevious: r.p.SkipIfPrevious}
}

func (h *Rotate) run(ctx context.Context, r *rotation) (outcome string, err error) {
	claim, err := h.deps.Store.Claim(ctx, r.request())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "failed", permanent(fmt.Errorf("instance %s is not registered", r.p.InstanceID))
	case errors.Is(err, store.ErrDeprovisioned):
		return "failed", permanent(fmt.Errorf("instance %s is deprovisioned", r.p.InstanceID))
	case err != nil:
		return "retry", err
	}
	r.claim = claim
	switch claim.Status {
	case store.Joined:
		r.log.Info().Str("joined_rotation_id", claim.RotationID).Msg("rotation_joined")
		return "joined", nil
	case store.Skipped:
		if claim.Refused != nil {
			// A limit of the claim (REKEY_MAX_PREVIOUS): the store recorded a "refused" event.
			r.log.Warn().Str("refused", claim.Refused.Reason).Msg("rotation_refused")
			return "skipped", nil
		}
		r.log.Info().Msg("rotation_skipped_grace_running")
		return "skipped", nil
	case store.Done:
		// A rerun after a crash: make sure the revocation was scheduled.
		return "already_done", h.deps.enqueueRevoke(ctx, claim.Previous)
	}
	return h.rotate(ctx, r)
}

func (h *Rotate) rotate(ctx context.Context, r *rotation) (string, error) {
	credID, config, err := h.credential(ctx, r)
	if errors.Is(err, store.ErrNotFound) && r.claim.CredentialID != "" || errors.Is(err, store.ErrConflict) {
		// Another run of the task moved the rotation on meanwhile; the store
		// discarded any credential minted too late.
		return h.finished(ctx, r)
	}
	if err != nil {
		return h.fail(ctx, r, "mint", err)
	}
	r.log = r.log.With().Str("credential_id", credID).Logger()
	// Once a push was attempted the apps may already use the credential:
	// verifying again could only discard a live credential.
	if !r.claim.PushAttempted {
		if err := h.deps.Issuer.Verify(ctx, r.p.InstanceID, credID); err != nil && !errors.Is(err, issuer.ErrVerifyUnsupported) {
			return h.fail(ctx, r, "verify", err)
		}
		if err := h.deps.Store.MarkPushAttempt(ctx, r.p.RotationID); err != nil {
			return "retry", err
		}
	}
	in := r.claim.Instance
	target := heroku.Target{AddonID: in.ID, APIVersion: in.APIVersion, HerokuID: in.HerokuID}
	err = h.deps.Heroku.UpdateConfig(h.classed(ctx, r), target, configVars(config))
	h.deps.observePush(ctx, in.ID, err)
	if err != nil {
		held, herr := h.heldByHeroku(ctx, r, target, config, err)
		switch {
		case herr != nil:
			return "retry", fmt.Errorf("push: %w; reading Heroku's config back: %w", err, herr)
		case !held:
			return h.fail(ctx, r, "push", err)
		}
		r.log.Info().Msg("earlier_push_applied")
	}
	return h.promote(ctx, r, credID)
}

// heldByHeroku tells, after a push failed permanently in a rotation whose
// earlier push had an unknown outcome (a timeout, a crash), whether Heroku
// holds the credential all the same: then it must be promoted, never
// discarded, or apps would run on a revoked credential (I1).
// An error reading the config back leaves the answer unknown: the run is
// retried rather than the credential discarded.
func (h *Rotate) heldByHeroku(ctx context.Context, r *rotation, t heroku.Target, config map[string]secret.String, err error) (bool, error) {
	if !r.claim.PushAttempted || !isPermanent(err) || heroku.IsGone(err) {
		return false, nil
	}
	got, gerr := h.deps.Heroku.GetConfig(h.classed(ctx, r), t)
	if gerr != nil {
		return false, gerr
	}
	for name, v := range config {
		if got[name].Reveal() != v.Reveal() {
			return false, nil
		}
	}
	return true, nil
}

// promote makes the pushed credential current and schedules the old one's
// revocation.
func (h *Rotate) promote(ctx context.Context, r *rotation, credID string) (string, error) {
	in := r.claim.Instance
	grace := h.grace(r)
	prev, err := h.deps.Store.Promote(ctx, in.ID, r.p.RotationID, credID, grace, "grace "+grace.String())
	if err != nil {
		return "retry", err
	}
	r.log.Info().Dur("grace", grace).Msg("rotated")
	return "rotated", h.deps.enqueueRevoke(ctx, prev)
}

// finished handles a rotation that another run of the task, at the same
// time, moved on after this run's claim (I6): its pending credential was
// promoted or discarded, or it holds another credential. Once the rotation
// is done only its revocation is left to make sure of; otherwise the task
// runs again and resumes with the stored credential.
func (h *Rotate) finished(ctx context.Context, r *rotation) (string, error) {
	claim, err := h.deps.Store.Claim(ctx, r.request())
	switch {
	case err != nil:
		return "retry", err
	case claim.Status != store.Done:
		return "retry", fmt.Errorf("mint: pending credential %s of rotation %s is gone", r.claim.CredentialID, r.p.RotationID)
	}
	return "already_done", h.deps.enqueueRevoke(ctx, claim.Previous)
}

// credential mints the rotation's credential, or reloads it when an earlier
// run minted it already.
func (h *Rotate) credential(ctx context.Context, r *rotation) (string, map[string]secret.String, error) {
	if id := r.claim.CredentialID; id != "" {
		cfg, err := h.deps.Store.PendingConfig(ctx, r.p.InstanceID, id)
		return id, cfg, err
	}
	cred, err := h.deps.Issuer.Mint(ctx, r.p.InstanceID, r.p.RotationID)
	if err != nil {
		return "", nil, err
	}
	if len(cred.Config) == 0 {
		return "", nil, permanent(errors.New("issuer returned a credential with no config vars"))
	}
	if err := h.deps.Store.SavePending(ctx, r.p.InstanceID, r.p.RotationID, cred.ID, cred.Config); err != nil {
		return "", nil, err
	}
	return cred.ID, cred.Config, nil
}

// classed marks the Heroku call's priority for the rate limiter.
func (h *Rotate) classed(ctx context.Context, r *rotation) context.Context {
	if r.queue == tasks.QueueInteractive {
		return ratelimit.WithClass(ctx, ratelimit.Interactive)
	}
	return ratelimit.WithClass(ctx, ratelimit.Background)
}

// grace is the rotation's grace, never below the floor (Deps.MinGrace).
func (h *Rotate) grace(r *rotation) time.Duration {
	return max(h.requestedGrace(r), h.deps.MinGrace)
}

func (h *Rotate) requestedGrace(r *rotation) time.Duration {
	switch in := r.claim.Instance; {
	case r.p.Grace > 0:
		return time.Duration(r.p.Grace)
	case in.Grace > 0:
		return in.Grace
	case in.PrivateSpace && h.deps.PrivateSpaceGrace > 0:
		return h.deps.PrivateSpaceGrace
	}
	return h.deps.Grace
}

// fail sorts a step's error: waiting for budget is retried later without a
// failure, a permanent error ends the rotation (its pending credential
// discarded, the current one kept), anything else is retried by asynq.
func (h *Rotate) fail(ctx context.Context, r *rotation, step string, err error) (string, error) {
	if later := retryLater(err); later != nil {
		return "rate_limited", later
	}
	if !isPermanent(err) {
		_ = h.deps.Store.AddEvent(ctx, store.Event{Type: "retrying", InstanceID: r.p.InstanceID,
			RotationID: r.p.RotationID, Detail: step + ": " + err.Error()})
		return "retry", fmt.Errorf("%s: %w", step, err)
	}
	cause := fmt.Sprintf("%s: %v", step, err)
	discarded, ferr := h.deps.Store.Fail(ctx, r.p.InstanceID, r.p.RotationID, failureCode(step, err), cause)
	if ferr != nil {
		return "retry", fmt.Errorf("%s failed permanently, and recording it failed: %w", step, ferr)
	}
	if heroku.IsGone(err) {
		// The add-on is gone or no longer ours: stop rotating it.
		if derr := h.deps.Store.Deprovision(ctx, r.p.InstanceID); derr != nil {
			return "retry", derr
		}
	}
	if err := h.deps.enqueueRevoke(ctx, discarded); err != nil {
		return "retry", err
	}
	r.log.Warn().Str("step", step).Msg("rotation_failed")
	return "failed", permanent(errors.New(cause))
}

// isPermanent reports whether a step's error will not go away by retrying.
func isPermanent(err error) bool {
	return errors.Is(err, asynq.SkipRetry) || errors.Is(err, store.ErrConflict) ||
		heroku.IsGone(err) || heroku.IsPermanent(err) || issuer.IsPermanent(err)
}

// failureCode labels a permanent failure for grouping in batch reports,
// such as "push:not_found" or "mint:issuer_422".
func failureCode(step string, err error) string {
	var api *heroku.APIError
	var iss *issuer.Error
	switch {
	case errors.As(err, &api) && api.ID != "":
		return step + ":" + api.ID
	case errors.As(err, &api):
		return fmt.Sprintf("%s:heroku_%d", step, api.Status)
	case errors.As(err, &iss):
		return fmt.Sprintf("%s:issuer_%d", step, iss.Status)
	case errors.Is(err, store.ErrConflict):
		return step + ":conflict"
	}
	return step + ":error"
}

// retryLater turns "wait for the budget" into a RetryLaterError.
func retryLater(err error) *RetryLaterError {
	if d, ok := ratelimit.IsDelay(err); ok {
		return &RetryLaterError{After: d, Reason: "waiting for Heroku API budget"}
	}
	var rl *heroku.RateLimitError
	if errors.As(err, &rl) {
		after := rl.RetryAfter
		if after <= 0 {
			after = 5 * time.Second
		}
		return &RetryLaterError{After: after, Reason: "Heroku answered 429 rate_limit"}
	}
	return nil
}

// configVars orders a credential's config by name, for one PATCH.
func configVars(config map[string]secret.String) []heroku.ConfigVar {
	vars := make([]heroku.ConfigVar, 0, len(config))
	for name, v := range config {
		vars = append(vars, heroku.ConfigVar{Name: name, Value: v})
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	return vars
}
