// Package breaker is rekey's circuit breaker for account-level Heroku
// failures. When a rotated OAuth client secret or a suspended partner
// account makes Heroku answer 401 or 403 for many instances at once, failing
// the fleet one instance at a time would fail every rotation of a wave (and
// leave each instance to be looked at by hand). Instead the breaker opens:
// the bulk queue, which carries fleet waves and scheduled rotations, is
// paused for every worker process, the scheduler stops enqueueing, and both
// stay so until an operator resumes them (`rekey breaker resume`).
//
// Interactive and default work keeps running: a customer's or an operator's
// single rotation is its own evidence, and tells the operator when Heroku
// has recovered. Revocations keep running too: they go to the issuer, not
// to Heroku, and delaying them would keep superseded credentials alive.
//
// The decision is the store's (internal/store, breaker.go): one window in
// Redis shared by every worker, and one script that records an answer and
// opens the breaker atomically, so that exactly one worker sees it open.
// That worker pauses the queue and writes the one log line of the opening.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// PausedQueue is the queue an open breaker pauses: bulk waves and
// scheduled rotations.
const PausedQueue = tasks.QueueBulk

// Store is what the breaker needs of internal/store.
type Store interface {
	ObserveBreaker(ctx context.Context, instanceID string, deniedStatus int, p store.BreakerPolicy) (store.BreakerVerdict, error)
	BreakerState(ctx context.Context) (store.BreakerState, error)
	ResumeBreaker(ctx context.Context, by string) (bool, error)
	BreakerWindow(ctx context.Context, window time.Duration) (denied, answered int64, err error)
}

// Queues pauses and resumes asynq queues (*asynq.Inspector). A paused
// queue is skipped by every asynq server on the Redis, and asynqmon
// (/monitoring) shows it paused.
type Queues interface {
	PauseQueue(queue string) error
	UnpauseQueue(queue string) error
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
	Queues() ([]string, error)
}

// Params build a Breaker.
type Params struct {
	// Store keeps the window and the state. Required.
	Store Store
	// Queues pauses the bulk queue. Required.
	Queues Queues
	Logger zerolog.Logger
	// Policy is REKEY_BREAKER_THRESHOLD, REKEY_BREAKER_FRACTION and
	// REKEY_BREAKER_WINDOW. A zero Threshold turns observing off: the
	// breaker never opens, though Status and Resume still work.
	Policy store.BreakerPolicy
}

// Breaker observes Heroku's answers and opens when the policy says so. It
// is safe for concurrent use, and any number of Breakers in any number of
// processes share one state through the store.
type Breaker struct{ p Params }

// New checks p and returns a Breaker.
func New(p Params) (*Breaker, error) {
	switch {
	case p.Store == nil || p.Queues == nil:
		return nil, errors.New("breaker: Store and Queues are required")
	case p.Policy.Threshold < 0:
		return nil, errors.New("breaker: REKEY_BREAKER_THRESHOLD must not be negative")
	case p.Policy.Threshold == 1:
		// One instance's 403 is that customer's add-on, never the account.
		return nil, errors.New("breaker: REKEY_BREAKER_THRESHOLD must be 0 (off) or at least 2")
	case p.Policy.Threshold > 0 && (p.Policy.Fraction <= 0 || p.Policy.Fraction > 1):
		return nil, errors.New("breaker: REKEY_BREAKER_FRACTION must be more than 0 and at most 1")
	case p.Policy.Threshold > 0 && p.Policy.Window < time.Second:
		return nil, errors.New("breaker: REKEY_BREAKER_WINDOW must be at least a second")
	}
	return &Breaker{p: p}, nil
}

// Observe implements handlers.Breaker (checked in its test): it records Heroku's answer to a
// push for instanceID (err nil for a 2xx) and, when that answer opens the
// breaker, pauses the bulk queue and says why. Errors are logged, never
// returned: the breaker must not fail the rotation that fed it.
func (b *Breaker) Observe(ctx context.Context, instanceID string, err error) {
	denied, ok := answer(err)
	if !ok || b.p.Policy.Threshold == 0 {
		return
	}
	// The answer is a fact whatever became of the task's context.
	ctx = context.WithoutCancel(ctx)
	v, oerr := b.p.Store.ObserveBreaker(ctx, instanceID, denied, b.p.Policy)
	if oerr != nil {
		zerolog.Ctx(ctx).Warn().Err(oerr).Msg("breaker_observe_failed")
		return
	}
	switch {
	case v == store.BreakerOpened:
		b.opened(ctx)
	case v == store.BreakerOpen && denied != 0:
		// Still open, and still denied: a bulk queue that runs anyway (an
		// operator unpaused it by hand, or the pause at the opening failed)
		// is paused again, or the rest of the wave meets the same denials
		// one instance at a time. Only `rekey breaker resume` closes it.
		b.repause()
	}
}

// repause pauses the bulk queue again while the breaker is open, and says
// so when it was running.
func (b *Breaker) repause() {
	paused, err := b.paused()
	if err == nil && paused {
		return
	}
	if err == nil {
		err = b.p.Queues.PauseQueue(PausedQueue)
	}
	if err != nil {
		b.p.Logger.Warn().Err(err).Str("paused_queue", PausedQueue).Msg("breaker_repause_failed")
		return
	}
	b.p.Logger.Error().Str("paused_queue", PausedQueue).Str("resume_with", ResumeCommand).Msg("breaker_repaused")
}

// answer sorts one push's outcome: whether Heroku answered at all in a way
// that bears on the account's standing, and whether that answer was a
// denial. Denials are a 401, which the client returns only after
// refreshing the token, and a refresh the token endpoint refused without
// naming the add-on's grant (heroku.ErrTokenDenied: a client secret Heroku
// no longer takes answers 400 as well as 401), counted together as
// credentials refused; a 403; and answers not Heroku's, for every instance
// alike: a 2xx without the config, a redirect, which Heroku's API never
// answers, and a 4xx of the Platform API without the error id its every
// 4xx carries (APIError.CarriesID; an id rekey does not list, which a
// push's error does not keep, is still Heroku's), such as an egress
// proxy's own 404 page for a route it does not pass on. A refresh refused invalid_grant is
// that add-on's own authorization revoked: an answer, no denial. 429s and
// 5xx bear on Heroku's load, not on the account, and calls that got no
// answer, or a 2xx whose body was lost on the way, prove nothing: neither
// is counted, so an outage cannot dilute a run of denials below the
// fraction. A 408 is no answer in time either: a front built on Envoy
// answers it, without Heroku's error id, when Heroku is slow to answer a
// push it passed on, as others answer 504.
func answer(err error) (denied int, ok bool) {
	var api *heroku.APIError
	var unconfirmed *heroku.UnconfirmedError
	var transport *heroku.TransportError
	switch {
	case err == nil:
		return 0, true
	// A V1 push answered 2xx whose read-back did not confirm it: the read's
	// own answer is what counts. Heroku's config without the vars sent (a
	// read lagging behind the write) is an answer; a 5xx or no answer to
	// the read is not counted; a page is not Heroku's.
	case errors.As(err, &unconfirmed) && unconfirmed.Read == nil:
		return 0, true
	case errors.As(err, &unconfirmed):
		return answer(unconfirmed.Read)
	// A 2xx whose body broke off on the way (the connection reset halfway,
	// the body trickling past the client's timeout) is an answer lost in
	// transit, as one cut before its status line is: no sign that
	// something else answers for Heroku, and an incident on the way would
	// otherwise open the breaker for the wave it meets.
	case errors.Is(err, heroku.ErrUnexpectedAnswer) && errors.As(err, &transport):
		return 0, false
	case errors.Is(err, heroku.ErrUnexpectedAnswer):
		return store.DeniedUnexpected, true
	// A redirect of the token endpoint's is ErrTokenDenied too: not
	// Heroku's answer, rather than a client secret refused.
	case errors.As(err, &api) && api.Status >= 300 && api.Status <= 399:
		return store.DeniedUnexpected, true
	case errors.Is(err, heroku.ErrTokenDenied):
		return store.DeniedUnauthorized, true
	case !errors.As(err, &api) || api.Status >= 500 || api.Status == http.StatusRequestTimeout:
		return 0, false
	case api.Status == store.DeniedUnauthorized || api.Status == store.DeniedForbidden:
		return api.Status, true
	case !api.CarriesID() && !v1(api.Endpoint):
		return store.DeniedUnexpected, true
	}
	return 0, true
}

// v1 reports whether endpoint is the legacy vendor API's, whose error
// bodies Heroku does not document: a 4xx of it without an error id may be
// Heroku's own, a stale app's 404 in a V1 fleet.
func v1(endpoint string) bool {
	return endpoint == heroku.EndpointV1Put || endpoint == heroku.EndpointV1Get
}

// opened pauses the bulk queue and writes the opening's one log line.
func (b *Breaker) opened(ctx context.Context) {
	st, serr := b.p.Store.BreakerState(ctx)
	perr := b.pause()
	ev := b.p.Logger.Error()
	if perr != nil || serr != nil {
		ev = ev.AnErr("pause_error", perr).AnErr("state_error", serr)
	}
	ev.Int("denied", st.Denied).Int("answered", st.Answered).Int("unauthorized", st.Unauthorized).
		Int("forbidden", st.Forbidden).Int("unexpected", st.Unexpected).Dur("window", st.Window).Str("paused_queue", PausedQueue).
		Str("reason", Reason(st)).Msg("breaker_opened")
}

// pause pauses the bulk queue unless it is paused already. A queue asynq
// does not know yet (it never held a task) is paused all the same, so that
// a wave enqueued while the breaker is open waits too.
func (b *Breaker) pause() error {
	if paused, err := b.paused(); err != nil || paused {
		return err
	}
	if err := b.p.Queues.PauseQueue(PausedQueue); err != nil {
		return fmt.Errorf("pause queue %s: %w", PausedQueue, err)
	}
	return nil
}

// paused reports whether the bulk queue is paused. A queue that never held
// a task is not paused.
func (b *Breaker) paused() (bool, error) {
	// GetQueueInfo answers asynq's internal NOT_FOUND, not
	// ErrQueueNotFound, for a queue asynq does not know yet: ask first.
	known, err := b.p.Queues.Queues()
	if err != nil {
		return false, fmt.Errorf("list queues: %w", err)
	}
	if !slices.Contains(known, PausedQueue) {
		return false, nil
	}
	info, err := b.p.Queues.GetQueueInfo(PausedQueue)
	switch {
	case errors.Is(err, asynq.ErrQueueNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read queue %s: %w", PausedQueue, err)
	}
	return info.Paused, nil
}

// Resume closes the breaker, forgets the answers that opened it and
// resumes the bulk queue; by names who resumed it. It reports whether the
// breaker was open. It resumes a paused bulk queue even when the breaker
// was closed, so a resume repeats safely after a failure half-way.
func (b *Breaker) Resume(ctx context.Context, by string) (bool, error) {
	was, err := b.p.Store.ResumeBreaker(ctx, by)
	if err != nil {
		return false, err
	}
	if err := b.unpause(); err != nil {
		return was, err
	}
	b.p.Logger.Info().Str("by", by).Bool("was_open", was).Str("resumed_queue", PausedQueue).Msg("breaker_resumed")
	return was, nil
}

// unpause resumes the bulk queue if it is paused.
func (b *Breaker) unpause() error {
	info, err := b.p.Queues.GetQueueInfo(PausedQueue)
	switch {
	case errors.Is(err, asynq.ErrQueueNotFound):
		// asynq knows a queue only once it held a task, but the breaker
		// may have paused it before: clear the pause all the same, and
		// take its only other answer, "not paused", as done.
		_ = b.p.Queues.UnpauseQueue(PausedQueue)
		return nil
	case err != nil:
		return fmt.Errorf("read queue %s: %w", PausedQueue, err)
	case !info.Paused:
		return nil
	}
	if err := b.p.Queues.UnpauseQueue(PausedQueue); err != nil {
		return fmt.Errorf("resume queue %s: %w", PausedQueue, err)
	}
	return nil
}
