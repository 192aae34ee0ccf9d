package handlers

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// usageTimeout bounds one usage question: a slow issuer never keeps a
// revoke task's worker busy for long.
const usageTimeout = 10 * time.Second

// HoldPolicy is how a revocation waits for its credential to go quiet
// (docs/design.md, "Holds"). A zero Quiet turns holds off.
type HoldPolicy struct {
	// Quiet is how recently a use holds a revocation (REKEY_HOLD_QUIET).
	Quiet time.Duration
	// Recheck is how long a held revocation waits before it asks again
	// (REKEY_HOLD_RECHECK); retry.Delay adds up to a tenth of jitter.
	Recheck time.Duration
	// Max is how long past the grace a hold may last (REKEY_HOLD_MAX).
	Max time.Duration
	// KeepAtCap keeps holding past Max (REKEY_HOLD_AT_CAP=hold); by
	// default the revocation goes ahead at the cap.
	KeepAtCap bool
}

// HoldStore is what holds need of the store (*store.Store).
type HoldStore interface {
	HoldOf(ctx context.Context, instanceID, credID string) (store.Hold, bool, error)
	SaveHold(ctx context.Context, h store.Hold, event, detail string) error
	ReleaseHold(ctx context.Context, instanceID, credID, why string, at time.Time) (bool, error)
	ConfigVars(ctx context.Context, instanceID string) ([]string, error)
}

// CustomerLog writes a short line into an instance's app log stream, best
// effort: it never fails a task and never blocks one for long
// (internal/logplex). Lines never hold a secret.
type CustomerLog interface {
	Notify(ctx context.Context, instanceID, line string)
}

// errNoLongerWaiting means a hold could not be saved: its credential no
// longer waits for revocation, or no longer waits on the issuer's usage
// (expedited, or the hold released by an operator, meanwhile). The run
// must not go on with what it read before (Revoke.reread).
var errNoLongerWaiting = errors.New("the credential no longer waits for revocation")

// holding decides, at a previous credential's revoke time, whether its
// revocation waits: it returns a *RetryLaterError while the issuer reports
// the credential used within the quiet period, and nil when the revocation
// goes ahead. Evidence only lengthens the grace: this runs after revoke_at
// has come, never before (I2). A release it makes is noted on c
// (HoldReleasedAt), from which the revocation's lag counts.
func (h *Revoke) holding(ctx context.Context, c *store.Credential, log zerolog.Logger) error {
	d := h.deps
	rep, ok := d.Issuer.(issuer.UsageReporter)
	if d.HoldStore == nil || d.Holds.Quiet <= 0 || !ok || c.State != store.CredentialPrevious {
		return nil
	}
	held, isHeld, err := d.HoldStore.HoldOf(ctx, c.InstanceID, c.ID)
	switch {
	case err != nil:
		return err
	case !c.ExpeditedAt.IsZero():
		return h.release(ctx, c, isHeld, "the revocation was expedited (an emergency revoke)")
	case isHeld && held.ReleasedBy != "":
		return h.release(ctx, c, isHeld, "released by "+held.ReleasedBy)
	case c.HoldReleasedBy != "":
		// An operator released its hold, and the revocation failed since
		// (an issuer's 5xx): the release stands for the retry.
		return nil
	}
	u, err := askUsage(ctx, rep, c)
	h.deps.observeIssuer(issuer.OpUsage, err)
	switch {
	case errors.Is(err, issuer.ErrUsageUnsupported):
		return h.release(ctx, c, isHeld, "the issuer does not report usage")
	case err != nil:
		// No new evidence: the last one stands, and ages out by itself.
		log.Warn().Err(err).Msg("usage_unknown")
		u = issuer.Usage{LastUsedAt: held.LastUsedAt, LastUsedBy: held.LastUsedBy}
	}
	now := d.now()
	last := issuer.ClampUsage(u.LastUsedAt, now)
	if u.LastUsedAt.IsZero() || now.Sub(last) >= d.Holds.Quiet {
		return h.release(ctx, c, isHeld, quietSentence(u.LastUsedAt))
	}
	next := held
	if !isHeld {
		next = store.Hold{InstanceID: c.InstanceID, CredentialID: c.ID, RevokeAt: c.RevokeAt, HeldAt: now,
			CapAt: c.RevokeAt.Add(d.Holds.Max)}
	}
	next.LastUsedAt, next.LastUsedBy, next.CheckedAt, next.Checks = last, u.LastUsedBy, now, held.Checks+1
	next.NextCheckAt = now.Add(recheckAfter(d.Holds.Recheck, next.CapAt.Sub(now)))
	return h.keep(ctx, c, next, isHeld, log)
}

// recheckAfter is how long a held revocation waits before it asks again:
// the re-check interval, but no later than the cap, toCap from now, so that
// a re-check longer than REKEY_HOLD_MAX cannot keep the credential valid
// past the cap that bounds every hold. Once capped (and held at the cap),
// the interval.
func recheckAfter(recheck, toCap time.Duration) time.Duration {
	if toCap > 0 && toCap < recheck {
		return toCap
	}
	return recheck
}

// keep saves the hold (or, at its cap, does what REKEY_HOLD_AT_CAP says)
// and asks asynq to run the task again after the re-check interval.
func (h *Revoke) keep(ctx context.Context, c *store.Credential, next store.Hold, wasHeld bool, log zerolog.Logger) error {
	d := h.deps
	event := map[bool]string{true: store.EventHoldRechecked, false: store.EventRevocationHeld}[wasHeld]
	detail := next.UsedText(d.now())
	if !d.now().Before(next.CapAt) {
		if !d.Holds.KeepAtCap {
			log.Error().Time("cap_at", next.CapAt).Msg("hold_cap_reached_revoking")
			if err := d.HoldStore.SaveHold(ctx, next, store.EventHoldCapped, "cap reached; revoking although it "+detail); errors.Is(err, store.ErrConflict) {
				return errNoLongerWaiting
			}
			return h.release(ctx, c, true, "the hold reached its cap")
		}
		log.Error().Time("cap_at", next.CapAt).Msg("hold_cap_reached_holding")
		if !next.Capped {
			event, detail, next.Capped = store.EventHoldCapped, "cap reached; still held because "+detail, true
		}
	}
	if err := d.HoldStore.SaveHold(ctx, next, event, detail); errors.Is(err, store.ErrConflict) {
		// The credential no longer waits for revocation: another run of
		// the task revoked it meanwhile (I6), or a registration made it
		// current again; or it was expedited, or its hold released, while
		// the run asked about usage. The run reads it again (Revoke.reread).
		log.Info().Err(err).Msg("hold_not_saved")
		return errNoLongerWaiting
	} else if err != nil {
		return err
	}
	if !wasHeld {
		log.Info().Time("cap_at", next.CapAt).Msg("revocation_held")
		h.notify(ctx, c, next.Sentence(h.deps.varNames(ctx, c.InstanceID), d.now()))
	}
	return &RetryLaterError{After: next.NextCheckAt.Sub(next.CheckedAt), Reason: "old credential still in use"}
}

// release ends a hold, if any, so that the revocation goes ahead, and
// notes the end on c: the revocation is due from now (Credential.DueAt).
func (h *Revoke) release(ctx context.Context, c *store.Credential, isHeld bool, why string) error {
	if !isHeld {
		return nil
	}
	now := h.deps.now()
	released, err := h.deps.HoldStore.ReleaseHold(ctx, c.InstanceID, c.ID, why, now)
	if released {
		c.HoldReleasedAt = now
	}
	return err
}

func askUsage(ctx context.Context, rep issuer.UsageReporter, c *store.Credential) (issuer.Usage, error) {
	ctx, cancel := context.WithTimeout(ctx, usageTimeout)
	defer cancel()
	return rep.Usage(ctx, c.InstanceID, c.ID)
}

func quietSentence(last time.Time) string {
	if last.IsZero() {
		return "not used"
	}
	return "not used since " + last.UTC().Format(time.RFC3339)
}

// notify writes line to the instance's app log stream, best effort.
func (h *Revoke) notify(ctx context.Context, c *store.Credential, line string) {
	if h.deps.CustomerLog != nil {
		h.deps.CustomerLog.Notify(ctx, c.InstanceID, line)
	}
}

// varNames are the instance's config var names for a customer's line; nil
// when the instance cannot be read.
func (d *Deps) varNames(ctx context.Context, instanceID string) []string {
	if d.HoldStore == nil {
		return nil
	}
	names, err := d.HoldStore.ConfigVars(ctx, instanceID)
	if err != nil {
		return nil
	}
	return names
}

// varText joins config var names for a customer's line.
func varText(names []string) string {
	if len(names) == 0 {
		return "add-on"
	}
	return strings.Join(names, ", ")
}
