package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// customerLimit is what the dashboard says about the customer's limits on
// rotations (REKEY_CUSTOMER_ONE_PER_GRACE, REKEY_CUSTOMER_ROTATIONS_PER_DAY).
type customerLimit struct {
	// Sentence is shown beside the button; empty says nothing.
	Sentence string
	// Blocked disables the button: the claim would refuse it. The store's
	// claim decides; this only spares the customer a refused click.
	Blocked bool
}

// customerLimit works out the dashboard's sentence about the limits.
func (s *server) customerLimit(ctx context.Context, v instanceView) (customerLimit, error) {
	lim := s.CustomerLimits
	if !v.DeprovisionedAt.IsZero() {
		return customerLimit{}, nil // no rotation to wait for: the page says it is deprovisioned
	}
	if m := s.Store.MaxPrevious(); m > 0 && len(v.PreviousCredentials) >= m {
		// REKEY_MAX_PREVIOUS: the claim would refuse it until the first
		// old credential is revoked (the list is in revoke order).
		r := &store.Refusal{Reason: store.RefusedPreviousCap, Until: v.PreviousCredentials[0].RevokeAt,
			Count: len(v.PreviousCredentials)}
		if v.PreviousCredentials[0].Dead {
			return customerLimit{Sentence: "Too many old credentials of this add-on still wait to be revoked. You can rotate again once " +
				"the next one is revoked: its revocation needs an operator. Your current credential is unaffected.", Blocked: true}, nil
		}
		return customerLimit{Sentence: refusalSentence(r, lim, s.Now()), Blocked: true}, nil
	}
	if lim.OnePerGrace && len(v.PreviousCredentials) > 0 {
		if slices.ContainsFunc(v.PreviousCredentials, func(p previousView) bool { return p.Dead }) {
			// Not a wait that ends at a time, nor a retry: the page
			// must not promise one.
			return customerLimit{Sentence: "You can rotate again once the previous credential is revoked: its revocation " +
				"needs an operator. Your current credential is unaffected.", Blocked: true}, nil
		}
		last := v.PreviousCredentials[len(v.PreviousCredentials)-1].RevokeAt
		r := &store.Refusal{Reason: store.RefusedCustomerGrace, Until: last, Count: len(v.PreviousCredentials)}
		return customerLimit{Sentence: refusalSentence(r, lim, s.Now()), Blocked: true}, nil
	}
	if lim.PerDay <= 0 {
		return customerLimit{}, nil
	}
	used, oldest, err := s.Store.CustomerRotations(ctx, v.ID)
	if err != nil || used == 0 {
		return customerLimit{}, err
	}
	if used >= lim.PerDay {
		r := &store.Refusal{Reason: store.RefusedCustomerDaily, Until: oldest.Add(24 * time.Hour), Count: used}
		return customerLimit{Sentence: refusalSentence(r, lim, s.Now()), Blocked: true}, nil
	}
	return customerLimit{Sentence: fmt.Sprintf("%d of %d rotations today used.", used, lim.PerDay)}, nil
}

// rules says the customer's limits on rotations, as the dashboard states
// them beside the button; empty when there are none.
func (s *server) rules(v instanceView) string {
	lim := s.CustomerLimits
	if !v.DeprovisionedAt.IsZero() {
		return ""
	}
	var out []string
	switch {
	case lim.PerDay == 1:
		out = append(out, "You can rotate once in any 24 hours.")
	case lim.PerDay > 1:
		out = append(out, fmt.Sprintf("You can rotate up to %d times in any 24 hours.", lim.PerDay))
	}
	if lim.OnePerGrace {
		out = append(out, "After a rotation, you can rotate again once the old credential is revoked, "+
			s.graceText(v)+" later.")
	}
	return strings.Join(out, " ")
}

// refusalSentence says why the customer's rotation was refused and when it
// can be tried again.
func refusalSentence(r *store.Refusal, lim store.CustomerLimits, now time.Time) string {
	if r == nil {
		return "A rotation cannot be requested right now. Please try again later."
	}
	switch r.Reason {
	case store.RefusedCustomerGrace:
		if !r.Until.IsZero() && !r.Until.After(now) {
			// Its revoke time has passed, but the revocation waits (a
			// hold while the old credential is still in use, a retry, or
			// an operator when it was dead-lettered).
			return "You can rotate again once the previous credential is revoked: its revocation is waiting " +
				"because the old credential is still in use, is being retried, or needs an operator."
		}
		return fmt.Sprintf("You can rotate again after %s, when the previous credential is revoked.", hourMinute(r.Until, now))
	case store.RefusedCustomerDaily:
		return fmt.Sprintf("%d of %d rotations today used. You can rotate again after %s.", r.Count, lim.PerDay, hourMinute(r.Until, now))
	case store.RefusedPreviousCap:
		if !r.Until.IsZero() && !r.Until.After(now) {
			return "Too many old credentials of this add-on still wait to be revoked. You can rotate again once " +
				"the next one is revoked: its revocation is waiting because it is still in use, is being retried, or needs an operator."
		}
		return fmt.Sprintf("Too many old credentials of this add-on still wait to be revoked. You can rotate again after %s, when the next one is revoked.", hourMinute(r.Until, now))
	}
	return "A rotation cannot be requested right now. Please try again later."
}

// hourMinute writes a time as "14:05:30 UTC", with the date when it is not
// today's. Seconds count: with a 90-second grace, minutes alone would say
// a wrong time half the time.
func hourMinute(t, now time.Time) string {
	t = t.UTC()
	if t.IsZero() {
		return "a few moments"
	}
	if t.Format(time.DateOnly) != now.UTC().Format(time.DateOnly) {
		return t.Format("2 Jan 15:04:05 UTC")
	}
	return t.Format("15:04:05 UTC")
}

// lastError is the customer's sentence for the instance's last failure.
func lastError(v instanceView) string {
	if v.LastError == "" {
		return ""
	}
	return failureSentence(v.LastErrorCode, v.LastError)
}

// refusedByLimits reads whether the customer's limits refuse a rotation of
// the instance v now, and says why. It writes nothing, so a refused click
// leaves no trace; the claim checks again, atomically, for clicks at the
// same moment (a click it refuses leaves no batch either: fleet.Rotate).
func (s *server) refusedByLimits(ctx context.Context, v instanceView) (string, error) {
	lim, err := s.customerLimit(ctx, v)
	if err != nil || !lim.Blocked {
		return "", err
	}
	return lim.Sentence, nil
}

// refuseClick answers a click the limits refused, or a failed check.
func (s *server) refuseClick(w http.ResponseWriter, r *http.Request, sentence string, err error) {
	if err != nil {
		s.Logger.Error().Err(err).Str("route", r.Pattern).Msg("check customer limits failed")
		s.failedPage(w, r, err, "The rotation could not be requested. Please try again in a minute.")
		return
	}
	s.page(w, r, http.StatusTooManyRequests, "Rotation not available yet", sentence)
}
