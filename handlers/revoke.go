package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Revoke runs tasks.TypeRevoke: once a previous credential's revoke time has
// come (I2), or for a discarded one at once (after the grace it was given
// when its instance was deprovisioned), the issuer revokes it. It
// refuses a pending or current credential (I1).
type Revoke struct{ deps *Deps }

// ProcessTask implements asynq.Handler. Its error, which asynq keeps as the
// task's last error, is capped like every text the handlers keep; a revoke
// has no secret value at hand to scrub.
func (h *Revoke) ProcessTask(ctx context.Context, t *asynq.Task) error {
	return scrubError(h.process(ctx, t), nil)
}

func (h *Revoke) process(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseRevoke(t)
	if err != nil {
		return permanent(err)
	}
	log := zerolog.Ctx(ctx).With().Str("instance_id", p.InstanceID).Str("credential_id", p.CredentialID).Logger()
	c, err := h.deps.Store.Credential(ctx, p.InstanceID, p.CredentialID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Archived as refused: a revocation still listed as due whose record
		// is gone (evicted, restored in part) is set aside as dead by the
		// sweep, for an operator, never dropped: its credential may still
		// work at the issuer.
		return permanent(fmt.Errorf("credential %s of instance %s is unknown", p.CredentialID, p.InstanceID))
	case err != nil:
		return err
	case c.Revoked() || !waitsForRevocation(c):
		return h.settled(ctx, p, c)
	}
	if queue, ok := asynq.GetQueueName(ctx); ok && queue != tasks.QueueRevoke {
		return h.moveToRevokeQueue(ctx, p, c, queue)
	}
	// A discarded credential's revoke_at is its discarding time, unless it
	// was discarded with a grace (a deprovisioned instance's, failScript).
	// Until names the revoke time this run read: should it be brought
	// forward meanwhile (a customer's "revoke now" while this run is
	// active, which leaves the task to the sweep), the sweep runs the task
	// rather than leave it waiting for this time (retry.WaitsFor).
	return h.revoke(ctx, p, c, log, true)
}

// moveToRevokeQueue schedules the revocation of a revoke task found on
// another of rekey's queues on the revoke queue, at c's revoke time, with
// rekey's options, and ends the task found there. The tasks package
// refuses another queue for a revocation, but another app's asynq client,
// or an older version of the package, may put one there: the sweeps,
// `rekey revocations expedite` and "revoke now" look for it on the revoke
// queue only, and one whose revoke time is hours away would wait in that
// queue's retry set. The task on the revoke queue revokes at the revoke
// time, not before (I2); one of the credential already there (rekey's own)
// is as good as the one scheduled.
func (h *Revoke) moveToRevokeQueue(ctx context.Context, p tasks.RevokePayload, c store.Credential, queue string) error {
	t, err := tasks.NewRevokeTask(p, c.RevokeAt)
	if err != nil {
		return permanent(err)
	}
	if _, err := h.deps.Enqueuer.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("move revocation of %s to the %s queue, from the %s queue: %w", p.CredentialID, tasks.QueueRevoke, queue, err)
	}
	zerolog.Ctx(ctx).Warn().Str("instance_id", p.InstanceID).Str("credential_id", p.CredentialID).
		Str("moved_to", tasks.QueueRevoke).Time("revoke_at", c.RevokeAt).Str("detail", "a revoke task on the "+queue+
		" queue, where rekey's sweeps do not look for it: revoke tasks go on the revoke queue").
		Msg("revocation_moved_to_revoke_queue")
	return nil
}

// revoke revokes c, a credential that waits for its revocation, once its
// revoke time has come and no hold keeps it. mayReread lets a hold that
// could not be saved read the credential again once (reread).
func (h *Revoke) revoke(ctx context.Context, p tasks.RevokePayload, c store.Credential, log zerolog.Logger, mayReread bool) error {
	if wait, err := h.deps.untilRevokeAt(ctx, c); err != nil {
		return err
	} else if wait > 0 {
		return &RetryLaterError{After: wait, Reason: "revoke time not reached", Until: c.RevokeAt}
	}
	if err := h.sharedLive(ctx, p, c); err != nil {
		return err
	}
	if err := h.holding(ctx, &c, log); errors.Is(err, errNoLongerWaiting) {
		if mayReread {
			return h.reread(ctx, p, log)
		}
		return fmt.Errorf("revoke %s: %w; retried", c.ID, err)
	} else if err != nil {
		return err
	}
	// What made the credential revocable (its discard, a promotion past
	// it) reaches Redis's replicas first (store.Durable): a failover that
	// lost a discard would bring its rotation back and push the credential
	// revoked here (I1).
	if err := h.deps.Store.Durable(ctx); err != nil {
		return fmt.Errorf("revoke %s: %w", c.ID, err)
	}
	err := h.deps.Issuer.Revoke(ctx, p.InstanceID, p.CredentialID)
	h.deps.observeIssuer(issuer.OpRevoke, err)
	if err != nil {
		// A 401 refuses rekey, not the credential: a REKEY_ISSUER_SECRET
		// changed on one side only, or a clock skewed past the issuer's
		// window, answers every revocation so. Set aside as dead, each
		// would wait for an operator's retry; retried, each happens once
		// the secret or the clock is mended (I3), overdue meanwhile.
		if issuer.IsPermanent(err) && !issuer.RefusesRekey(err) {
			_ = h.deps.Store.AddEvent(ctx, store.Event{Type: store.EventRevokeFailed, InstanceID: p.InstanceID,
				CredentialID: p.CredentialID, Detail: scrubText(err.Error(), maxStoredText, nil)})
			h.observe(RevocationFailed, c)
			return permanent(fmt.Errorf("revoke: %w", err))
		}
		return fmt.Errorf("revoke: %w", err)
	}
	if err := h.deps.Store.MarkRevoked(ctx, p.InstanceID, p.CredentialID); err != nil {
		return err
	}
	h.observe(RevocationRevoked, c)
	log.Info().Str("state", c.State).Msg("revoked")
	if c.State == store.CredentialPrevious {
		h.notify(ctx, &c, "your old "+varText(h.deps.varNames(ctx, p.InstanceID))+" credential was revoked")
	}
	return nil
}

// sharedLive refuses, for good, the revocation of a credential the
// instance was registered with whose config is still another instance's
// live one (store.LiveElsewhere): the partner provisioned this add-on with
// that instance's credential. Revoking it here could revoke the other
// instance's credential too, under an issuer that revokes by value or by an
// id both were given, and break its apps while its own rotation has not
// replaced it. The revocation is set aside as dead, for an operator, with
// an event saying why; once the other instance rotated and its old
// credential was revoked, retrying it revokes this one.
func (h *Revoke) sharedLive(ctx context.Context, p tasks.RevokePayload, c store.Credential) error {
	shared, err := h.deps.Store.LiveElsewhere(ctx, c)
	if err != nil || !shared {
		return err
	}
	const why = "not revoked: its config is still another instance's live credential (this add-on was provisioned " +
		"with it), and revoking it could break that instance's apps; rotate the instance whose credential it is, then " +
		"retry this revocation"
	_ = h.deps.Store.AddEvent(ctx, store.Event{Type: store.EventRevokeFailed, InstanceID: p.InstanceID,
		CredentialID: p.CredentialID, Detail: why})
	h.observe(RevocationFailed, c)
	return permanent(fmt.Errorf("revoke %s: %s", c.ID, why))
}

// reread decides again on a credential whose hold could not be saved. It
// stopped waiting for its revocation while this run held it (another run
// revoked it, or a registration made it current again): the run never
// goes on to the issuer with the state read before, which would revoke it
// a second time, or revoke a current credential (I1). Or a "revoke now",
// or an operator's release of the hold, came while the run asked the
// issuer about usage: neither is ever held, and the run decides again on
// what it reads now, which revokes it.
func (h *Revoke) reread(ctx context.Context, p tasks.RevokePayload, log zerolog.Logger) error {
	c, err := h.deps.Store.Credential(ctx, p.InstanceID, p.CredentialID)
	switch {
	case err != nil:
		return err // retried; a record gone is then the first read's case
	case c.Revoked() || !waitsForRevocation(c):
		return h.settled(ctx, p, c)
	}
	return h.revoke(ctx, p, c, log, false)
}

// waitsForRevocation reports whether c is a credential rekey revokes:
// previous or discarded.
func waitsForRevocation(c store.Credential) bool {
	return c.State == store.CredentialPrevious || c.State == store.CredentialDiscarded
}

// settled ends a run on a credential with nothing to revoke: revoked
// already (a hold left on it goes), or one rekey would not revoke (stray).
func (h *Revoke) settled(ctx context.Context, p tasks.RevokePayload, c store.Credential) error {
	if c.Revoked() {
		return h.dropLeftoverHold(ctx, &c)
	}
	return h.stray(ctx, p, fmt.Errorf("credential %s is %s: only previous or discarded credentials are revoked", c.ID, c.State))
}

// dropLeftoverHold releases a hold left on a credential already revoked,
// so that it is no longer listed as held. The store keeps none since holds
// are marked on their credential (markRevokedScript deletes the hold with
// the revocation); one saved unmarked, by an earlier version while another
// run revoked the credential, goes when a run of its task comes again.
func (h *Revoke) dropLeftoverHold(ctx context.Context, c *store.Credential) error {
	if h.deps.HoldStore == nil {
		return nil
	}
	_, err := h.deps.HoldStore.ReleaseHold(ctx, c.InstanceID, c.ID, "the credential was revoked", h.deps.now())
	return err
}

// stray refuses a revoke task that names a credential rekey would not
// revoke now (pending, current or unconfirmed: I1), and has asynq drop it
// rather than archive it. The task is someone's mistake (another app's,
// through the tasks package, or one left from before a re-registration
// made its credential current again); archived, it would keep its task id,
// so that when the credential is superseded rekey's own revoke task could
// not be enqueued, and the sweep would take the stray task's refusal for
// the issuer's and set the revocation aside (I3). Should the revocations
// due still list the credential, the entry goes too: the sweep would
// enqueue the task again at every pass.
func (h *Revoke) stray(ctx context.Context, p tasks.RevokePayload, err error) error {
	if _, ferr := h.deps.Store.ForgetStrayDue(ctx, p.InstanceID, p.CredentialID); ferr != nil {
		return ferr // retried: the entry is dropped, or the credential revocable, by then
	}
	return fmt.Errorf("%w; the task is dropped: %w", err, asynq.RevokeTask)
}

// observe reports a previous credential's revocation and how late it ran
// against when it was due: a held revocation from its hold's release, since
// a hold lengthens the grace and is no lateness (its length shows in
// rekey_revocation_oldest_hold_seconds).
func (h *Revoke) observe(outcome string, c store.Credential) {
	if h.deps.Observer != nil && c.State == store.CredentialPrevious {
		h.deps.Observer.Revocation(outcome, h.deps.now().Sub(c.DueAt()))
	}
}
