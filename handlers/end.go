package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// waveFailure reports whether a rotation that failed for good at step for
// err may have failed for a reason the rest of its wave meets too, so that
// the pacing feeder counts it (Deps.observeRotation): any permanent failure
// at the issuer's steps, mint and verify. An issuer that answers every mint
// with its own 4xx (a 403 for a suspended tenant, a 400 after a change of
// its contract), or mints credentials rekey refuses (vars other than the
// registered ones, an id seen before), fails every instance alike, and a
// wave released at the budget's pace would fail whole, one instance after
// the other. So does a push answered in a way that is not Heroku's
// (heroku.ErrUnexpectedAnswer: a 2xx whose body never came, a page, a
// config without the vars sent), which a front before Heroku gives every
// push alike; each would end its rotation with a credential kept
// unconfirmed. One instance's such failure slows nothing: the feeder needs
// ten failed runs and none rotated. A rotation found deprovisioned ends at
// the mint step too, and is its instance's alone.
func waveFailure(step string, err error) bool {
	return (step == stepMint || step == stepVerify) && !errors.Is(err, errDeprovisionedSince) ||
		step == stepPush && errors.Is(err, heroku.ErrUnexpectedAnswer)
}

// end ends a rotation that failed permanently at step. The instance keeps
// its current credential, its registration and its OAuth tokens: rekey
// never deprovisions an instance on its own, whatever Heroku answers.
//
// What becomes of the pending credential follows I1 (a credential Heroku
// may hold is never revoked):
//   - no push was attempted: Heroku cannot hold it; it is discarded and
//     revoked at once;
//   - a push was attempted and Heroku's config, read back, holds it: the
//     push took effect after all, and it is promoted;
//   - every push was answered (none is unanswered) and either the config,
//     read back, holds none of its values, or Heroku reports the add-on
//     deprovisioned (its config left its apps with it): discarded and
//     revoked, with that proof handed to the store (store.Failure.NotHeld),
//     which voids it if a push was attempted since;
//   - the config holds some of its values but not all (a push Heroku
//     applied in part), or a push is still unanswered (it may land after
//     the read, on an add-on reported deprovisioned by mistake too), or the
//     config cannot be read back (a 403, a token that cannot be had):
//     nobody can prove Heroku holds none of it, so the store keeps it
//     unconfirmed and unrevoked, with a "push_unknown" event, until the
//     instance's next rotation replaces it on Heroku, or the partner
//     deprovisions the instance (then it is revoked after the grace).
//     Discarding it could revoke the credential the app runs on; keeping
//     it costs one live credential.
//
// A read-back Heroku answers 429, or the shared budget defers, is retried
// later without counting a failure, like the push itself (retryLater); the
// next run resumes at the read (landedBefore). Only maxReadBackWaits
// times: then the run pushes once more and the failure is recorded without
// the read, the credential kept unconfirmed, so that a read put off for
// good (a front answering 429 to reads, a budget paused by Heroku's low
// RateLimit-Remaining) does not push again for ever.
//
// The store checks the same rule itself (failScript), so a run acting on a
// stale view cannot discard a pushed credential either.
func (h *Rotate) end(ctx context.Context, r *rotation, step string, err error) (string, error) {
	// Grace: a credential of a deprovisioned instance whose push outcome
	// is unknown is discarded, but revoked only after it (failScript).
	// An issuer refusing rekey's signature (a REKEY_ISSUER_SECRET changed on
	// one side only) fails every instance alike: no instance's quarantine.
	f := store.Failure{Code: failureCode(step, err), Grace: h.grace(r), Fleetwide: issuer.RefusesRekey(err)}
	r.waveFailed = f.Fleetwide || waveFailure(step, err)
	var readErr error
	var settled int64
	if r.pushAttempted {
		// Read before Heroku is asked, so that an attempt made meanwhile
		// voids any proof (store.Failure.Attempts).
		var perr error
		if f.Attempts, settled, perr = h.deps.Store.PushAttempts(ctx, r.p.RotationID); perr != nil {
			return OutcomeRetry, fmt.Errorf("%s: %w; reading the push attempts: %w", step, err, perr)
		}
	}
	// partly is a config read back holding some of the credential's values:
	// nothing, not even a "deprovisioned" state, proves it not held then.
	partly := false
	if r.pushAttempted && r.config != nil && !isMismatch(err) {
		held, rerr := h.readBack(ctx, r)
		switch {
		case rerr == nil && held == holdsAll:
			r.log.Info().Msg("earlier_push_applied")
			return h.promote(ctx, r, r.credID)
		case rerr == nil && held == holdsNone:
			// With a push still unanswered, the config read may predate it.
			f.NotHeld = f.Attempts == settled
		case rerr == nil:
			partly = true
			r.log.Warn().Msg("push_applied_in_part")
		case isRateLimited(rerr):
			if later := h.readBackLater(ctx, r, rerr); later != nil {
				return OutcomeRateLimited, later
			}
			// Put off too often: recorded unread, the credential kept
			// unconfirmed, rather than pushed again for ever.
		case !isPermanent(rerr):
			return OutcomeRetry, fmt.Errorf("%s: %w; reading Heroku's config back: %w", step, err, rerr)
		}
		readErr = rerr
	}
	reason, gone := h.setAside(ctx, r, err, readErr)
	// A push still unanswered may land after Heroku's answer, and a single
	// "deprovisioned" may be wrong: only with every push answered does it
	// prove the config empty. A partner's DELETE, which the deprovisioning
	// of a real one brings, revokes a credential kept so after the grace.
	f.NotHeld = !partly && (f.NotHeld || gone && f.Attempts == settled)
	if reason != "" {
		if _, qerr := h.deps.Store.Quarantine(ctx, r.p.InstanceID, reason); qerr != nil {
			return OutcomeRetry, fmt.Errorf("%s failed permanently, and quarantining the instance failed: %w", step, qerr)
		}
		r.log.Warn().Str("reason", reason).Msg("instance_quarantined")
	}
	// Scrubbed only now, when the run knows every value it will see.
	f.Cause = r.scrub(fmt.Sprintf("%s: %v", step, err))
	return h.record(ctx, r, step, f)
}

// record stores the failure and schedules the revocation of a discarded
// credential.
func (h *Rotate) record(ctx context.Context, r *rotation, step string, f store.Failure) (string, error) {
	res, err := h.deps.Store.FailRotation(ctx, r.p.InstanceID, r.p.RotationID, f)
	if err != nil {
		return OutcomeRetry, fmt.Errorf("%s failed permanently, and recording it failed: %w", step, err)
	}
	if err := h.deps.enqueueRevoke(ctx, res.Discarded); err != nil {
		return OutcomeRetry, err
	}
	if res.Unconfirmed != "" {
		r.log.Warn().Str("step", step).Str("code", f.Code).Msg("rotation_failed_push_unknown")
	} else {
		r.log.Warn().Str("step", step).Str("code", f.Code).Msg("rotation_failed")
	}
	return OutcomeFailed, permanent(errors.New(f.Cause))
}

// holding is how much of a rotation's credential Heroku's config holds.
type holding int

const (
	// holdsNone: no var of the credential holds any of its values. Only
	// this may prove that Heroku does not hold the credential.
	holdsNone holding = iota
	// holdsSome: some var holds one of its values, not every var its own:
	// a push Heroku applied in part (one var set, another refused). The
	// app may run on that part, so the credential must not be revoked.
	holdsSome
	// holdsAll: every var holds its value: the push landed.
	holdsAll
)

// heldByHeroku reads the add-on's config back and tells whether it holds
// the whole of the rotation's credential.
func (h *Rotate) heldByHeroku(ctx context.Context, r *rotation) (bool, error) {
	held, err := h.readBack(ctx, r)
	return held == holdsAll, err
}

// readBack reads the add-on's config back and tells how much of the
// rotation's credential it holds. What it reads is scrubbed from any text
// the run keeps from then on: the app's live values are secrets too.
//
// A value counts wherever it sits among the credential's vars. A
// credential that repeats a value of the one Heroku holds (a host name
// that stays the same) reads as holdsNone only when the config read back
// is the current credential's, var for var (its fingerprint: a push
// applied in part never leaves that); otherwise it is kept unconfirmed
// rather than revoked, which is the safe side of I1.
func (h *Rotate) readBack(ctx context.Context, r *rotation) (holding, error) {
	got, err := h.deps.Heroku.GetConfig(h.classed(ctx, r), r.target())
	if err != nil {
		return holdsNone, err
	}
	r.rememberRead(got)
	values := make(map[string]bool, len(r.config))
	for _, v := range r.config {
		values[v.Reveal()] = true
	}
	all, some := true, false
	for name, v := range r.config {
		g, ok := got[name]
		all = all && ok && g.Reveal() == v.Reveal()
		some = some || ok && values[g.Reveal()]
	}
	switch {
	case all:
		return holdsAll, nil
	case some && !h.holdsTheCurrent(ctx, r, got):
		return holdsSome, nil
	}
	return holdsNone, nil
}

// holdsTheCurrent reports whether got, read back from Heroku, is the
// instance's current credential, var for var. A failed read says no.
func (h *Rotate) holdsTheCurrent(ctx context.Context, r *rotation, got map[string]secret.String) bool {
	mine := make(map[string]secret.String, len(r.config))
	for name := range r.config {
		v, ok := got[name]
		if !ok {
			return false
		}
		mine[name] = v
	}
	is, err := h.deps.Store.IsCurrentConfig(ctx, r.p.InstanceID, mine)
	if err != nil {
		r.log.Warn().Err(err).Msg("read_back_compare_failed")
	}
	return is
}

// setAside decides whether the failure sets the instance aside, and why,
// from the step's error and the read-back's: an add-on Heroku confirms gone
// (gone is then true when Heroku says deprovisioned: it holds no config,
// see confirmGone), or a rotation that can never
// proceed (no usable token, a stored value that cannot be opened). A 403 or
// 404 alone proves nothing about the add-on (a suspended partner account
// answers 403 for every add-on), so it is confirmed with GET /addons/{id}.
func (h *Rotate) setAside(ctx context.Context, r *rotation, errs ...error) (reason string, gone bool) {
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, heroku.ErrTokenUnreadable), unreadable(err):
			return "a stored secret of the instance cannot be opened: check REKEY_ENCRYPTION_KEYS", false
		case errors.Is(err, heroku.ErrTokenRefused):
			return "Heroku refused to renew the add-on's OAuth token (its authorization was revoked): " + store.RegisterAgain, false
		case errors.Is(err, heroku.ErrNoRefreshToken):
			return "the add-on's stored OAuth token has no refresh token to renew it with: " + store.RegisterAgain, false
		case heroku.IsTokenUnusable(err):
			return "no Heroku OAuth token is stored for the add-on: " + store.RegisterAgain, false
		case heroku.IsGone(err):
			return h.confirmGone(ctx, r)
		}
	}
	return "", false
}

// confirmGone asks Heroku for the add-on's state after a 403, 404 or 410.
// An add-on Heroku reports gone sets the instance aside. Only an explicit
// "deprovisioned" state also proves that Heroku holds none of its config
// (Heroku removes a deprovisioned add-on's vars from its apps); a 404 on
// the add-on could still be a matter of what the token may see, so it
// proves nothing about the config (I1).
func (h *Rotate) confirmGone(ctx context.Context, r *rotation) (string, bool) {
	state, err := h.deps.Heroku.AddonState(h.classed(ctx, r), r.target())
	switch {
	case err != nil:
		r.log.Info().Str("class", heroku.Classify(err).String()).Msg("addon_state_unknown")
		return "", false
	case heroku.AddonGone(state):
		reason := "Heroku reports the add-on " + state + "; rekey keeps the registration until the partner deprovisions it"
		return reason, state == heroku.AddonDeprovisioned
	}
	return "", false
}

func isMismatch(err error) bool {
	var mismatch *ConfigMismatchError
	return errors.As(err, &mismatch)
}
