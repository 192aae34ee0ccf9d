package herokufake

import (
	"context"
	"net/http"
	"time"
)

// Fault is one scripted answer, built with Respond, Echo, Hang or Delay.
type Fault struct {
	status int
	id     string // the error id; statusIDs' when empty
	echo   bool
	hang   bool
	delay  time.Duration
}

// Respond answers the call with status and Heroku's error body for it,
// changing nothing. A status below 400 lets the call through unchanged, so a
// script can read Respond(429), Respond(500), Respond(200).
func Respond(status int) Fault { return Fault{status: status} }

// RefuseGrant answers a token call 400 invalid_grant, as the token
// endpoint answers a refresh token whose authorization was revoked: one
// add-on's answer, where Respond(400) (bad_request) names no grant.
func RefuseGrant() Fault { return Fault{status: 400, id: InvalidGrant} }

// Echo answers the call with status (400 or above) and an error body whose
// message repeats every config value the request carried, as a careless
// API might, changing nothing. Tests use it to prove that no value of
// Heroku's error text reaches a log, an error or Redis.
func Echo(status int) Fault { return Fault{status: max(status, 400), echo: true} }

// Hang answers nothing until the client gives up (its request context ends).
// The call is counted with status 0.
func Hang() Fault { return Fault{hang: true} }

// Delay lets the call through after d of real time, or drops it if the client
// gives up first.
func Delay(d time.Duration) Fault { return Fault{delay: d} }

// Script queues faults for the next calls to endpoint e, one call each, in
// order, after any already queued. Calls beyond the script are answered
// normally.
func (f *Fake) Script(e Endpoint, faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[e] = append(f.scripts[e], faults...)
}

// inject applies latency, the script and the random error rate to a call of
// e, and reports whether it answered the call (or dropped it) by doing so.
func (f *Fake) inject(e Endpoint, x *exchange) bool {
	ctx := x.r.Context()
	if !wait(ctx, f.set.latency) {
		return true
	}
	fault, scripted := f.next(e)
	switch {
	case fault.hang:
		<-ctx.Done()
		return true
	case !wait(ctx, fault.delay):
		return true
	case fault.echo:
		x.echo(fault.status)
		return true
	case fault.status >= 400 && fault.id != "":
		x.fail(fault.status, fault.id, "Injected answer.")
		return true
	case fault.status >= 400:
		x.respond(fault.status)
		return true
	case !scripted && e != Unknown && f.randomError():
		x.respond(http.StatusInternalServerError)
		return true
	}
	return false
}

// next pops the scripted fault for e, or else returns the one set by Always.
func (f *Fake) next(e Endpoint) (Fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.scripts[e]
	if len(q) == 0 {
		fault, ok := f.always[e]
		return fault, ok
	}
	f.scripts[e] = q[1:]
	return q[0], true
}

func (f *Fake) randomError() bool {
	if f.set.errorRate == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < f.set.errorRate
}

// wait waits d and reports whether ctx was still live by then.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
