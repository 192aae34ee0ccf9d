package heroku

import (
	"context"
	"errors"
	"net/http"
)

// Class says what a failed call means for the rotation that made it.
type Class int

// The classes, from Classify.
const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassTransient: try again later (5xx, timeouts, connection errors).
	ClassTransient
	// ClassRateLimited: the budget is empty (429). Try again later, and do
	// not count it as a failure.
	ClassRateLimited
	// ClassUnauthorized: Heroku refused the credentials even after a token
	// refresh (V3), or the manifest credentials (V1). Retrying will not help.
	ClassUnauthorized
	// ClassGone: the add-on may be deprovisioned or no longer the partner's,
	// or the partner's access refused (403, 404, 410). Retrying will not
	// help, but it proves nothing about the add-on: a suspended account
	// answers 403 for every add-on. AddonState tells whether it is really
	// gone; rekey never deprovisions an instance on this answer.
	ClassGone
	// ClassPermanent: what rekey sent is wrong (400, 422, other 4xx), or
	// rekey lacks what the call needs. Retrying will not help.
	ClassPermanent
	// ClassCanceled: the caller's own context ended first; whether the call
	// took effect is unknown, and the caller knows why it gave up.
	ClassCanceled
)

var classNames = [...]string{"none", "transient", "rate_limited", "unauthorized", "gone", "permanent", "canceled"}

// String returns a stable snake_case name, fit for a metric label.
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Classify decides what err means for a retry. It is the one place that
// does; the rules run in order and the first that matches wins.
func Classify(err error) Class {
	var rate *RateLimitError
	var api *APIError
	var transport *TransportError
	switch {
	case err == nil:
		return ClassNone
	// 429 comes before other statuses: being rate limited is not failing.
	case errors.As(err, &rate):
		return ClassRateLimited
	// A token endpoint's 4xx that names no add-on's grant: every add-on
	// may get it (a client secret Heroku no longer takes). The breaker
	// counts it; retried, the rotation goes on once the fault is fixed.
	case errors.Is(err, ErrTokenDenied):
		return ClassTransient
	case errors.As(err, &api):
		return classifyStatus(api.Status)
	// Calls rekey could never make succeed as configured.
	case errors.Is(err, ErrNoToken), errors.Is(err, ErrTokenUnreadable),
		errors.Is(err, ErrNotConfigured), errors.Is(err, ErrInvalidRequest),
		errors.Is(err, ErrUnexpectedAnswer):
		return ClassPermanent
	// No response: the connection failed or the call's own timeout fired
	// while the caller still waited. The next attempt may well work.
	case errors.As(err, &transport):
		return ClassTransient
	// The caller's context ended (the client wraps its error only then).
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassCanceled
	// Anything else came from rekey's own dependencies, such as the limiter
	// or the token store failing to reach Redis. The task queue's retry
	// limit bounds the cost of being wrong.
	default:
		return ClassTransient
	}
}

// classifyStatus classifies a non-2xx, non-429 status.
func classifyStatus(status int) Class {
	switch {
	// The client has already refreshed the token and retried once.
	case status == http.StatusUnauthorized:
		return ClassUnauthorized
	// Forbidden, suspended, not found or gone: the add-on is not ours now.
	case status == http.StatusForbidden, status == http.StatusNotFound, status == http.StatusGone:
		return ClassGone
	// Request timeout and conflict (a concurrent change) clear up by
	// themselves.
	case status == http.StatusRequestTimeout, status == http.StatusConflict:
		return ClassTransient
	case status >= 500:
		return ClassTransient
	// 400, 402, 406, 422 and the rest, including a redirect, which Heroku's
	// partner endpoints never send.
	default:
		return ClassPermanent
	}
}

// IsTransient reports whether err is worth retrying later, including being
// rate limited.
func IsTransient(err error) bool {
	c := Classify(err)
	return c == ClassTransient || c == ClassRateLimited
}

// IsRateLimited reports whether err is a 429: retry later, but it is not a
// failure.
func IsRateLimited(err error) bool { return Classify(err) == ClassRateLimited }

// IsGone reports whether the add-on is gone or no longer the partner's.
func IsGone(err error) bool { return Classify(err) == ClassGone }

// IsPermanent reports whether retrying err can never help: ClassPermanent,
// ClassUnauthorized and ClassGone.
func IsPermanent(err error) bool {
	switch Classify(err) {
	case ClassPermanent, ClassUnauthorized, ClassGone:
		return true
	}
	return false
}

// Refused reports whether Heroku answered the call with a 4xx, a 429
// included: it refused the request, which took no effect. A 2xx took
// effect; a 5xx or no answer at all (a timeout, a reset) leaves it unknown,
// since Heroku may have applied the request before its answer failed or
// may still apply it. So does a 408: a front built on Envoy answers it
// when its stream idle timeout fires before the upstream's answer, after
// it passed the request on to Heroku.
func Refused(err error) bool {
	var limited *RateLimitError
	status := apiStatus(err)
	return errors.As(err, &limited) || (status >= 400 && status <= 499 && status != http.StatusRequestTimeout)
}

// apiStatus returns the status of err's *APIError, or 0.
func apiStatus(err error) int {
	var api *APIError
	if errors.As(err, &api) {
		return api.Status
	}
	return 0
}

// IsTokenUnusable reports whether err says the add-on's OAuth token cannot
// be had at all: none is stored (the instance was never authorized, or was
// deprovisioned), or the stored one cannot be opened. Unlike a refused
// token, no retry and no later call can help until someone acts.
func IsTokenUnusable(err error) bool {
	return errors.Is(err, ErrNoToken) || errors.Is(err, ErrTokenUnreadable) || errors.Is(err, ErrTokenRefused)
}
