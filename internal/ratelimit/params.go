package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// Scope says which Heroku budget a call draws on. Heroku does not document
// whether partner tokens share one bucket per partner account or get one per
// add-on authorization, so rekey lets the operator choose.
type Scope uint8

const (
	// ScopeAccount puts every call of every add-on instance on one budget.
	ScopeAccount Scope = iota
	// ScopeInstance gives each add-on instance a budget of its own.
	ScopeInstance
)

// String returns the name ParseScope accepts.
func (s Scope) String() string {
	switch s {
	case ScopeAccount:
		return "account"
	case ScopeInstance:
		return "instance"
	}
	return fmt.Sprintf("Scope(%d)", uint8(s))
}

// ParseScope reads "account" or "instance", as configuration spells them.
func ParseScope(s string) (Scope, error) {
	switch s {
	case "account":
		return ScopeAccount, nil
	case "instance":
		return ScopeInstance, nil
	}
	return 0, fmt.Errorf("ratelimit: scope %q is neither \"account\" nor \"instance\"", s)
}

// Params configures a Limiter. Only PerHour is required; a zero field takes
// the default its comment gives. Every process of one deployment must use the
// same PerHour, Burst, Reserve and Scope, or they will disagree about the
// shared budget.
type Params struct {
	// PerHour is the budget: how many Heroku calls all rekey processes
	// together may make per hour (REKEY_HEROKU_RATE). It must be positive.
	// Leave headroom below Heroku's 4500 for the partner's other clients.
	PerHour int
	// Burst is how many calls may go at once after a quiet spell, Reserve
	// included. Zero means ten seconds of budget (PerHour/360), and at least
	// Reserve+1.
	Burst int
	// Reserve is how many of the Burst tokens only interactive calls may
	// take, so that a customer's button never waits behind a bulk wave. Zero
	// means 2; a negative value means no reserve.
	Reserve int
	// Scope picks one budget for the account or one per add-on instance.
	// Zero means ScopeAccount.
	Scope Scope
	// MaxWait is the longest Wait blocks before it returns a *DelayError so
	// the caller can reschedule instead. Zero means 30 seconds.
	MaxWait time.Duration
	// LowWater is the RateLimit-Remaining below which rekey pauses, in
	// proportion to the shortfall, so it never drains Heroku's pool to zero.
	// Zero means 100; a negative value turns the check off.
	LowWater int
	// Backoff is the first pause after Heroku answers 429; each 429 that
	// follows a pause doubles it, up to MaxBackoff. Zero means 2 seconds, or
	// MaxBackoff when that is shorter.
	Backoff time.Duration
	// MaxBackoff caps every pause, after a 429 or at low water. Zero means
	// 60 seconds.
	MaxBackoff time.Duration
	// HerokuRefill is how long Heroku takes to give one token back; it sizes
	// the low-water pause. Zero means 800 ms (4500 per hour).
	HerokuRefill time.Duration
	// HoldRefresh is how stale a process's copy of the shared pause may get
	// before it asks Redis again. Zero means 250 ms.
	HoldRefresh time.Duration
}

// withDefaults fills the zero fields.
func (p Params) withDefaults() Params {
	if p.Reserve == 0 {
		p.Reserve = 2
	}
	if p.Burst == 0 {
		p.Burst = max(p.reserve()+1, p.PerHour/360)
	}
	p.MaxWait = orDefault(p.MaxWait, 30*time.Second)
	if p.LowWater == 0 {
		p.LowWater = 100
	}
	p.MaxBackoff = orDefault(p.MaxBackoff, 60*time.Second)
	p.Backoff = orDefault(p.Backoff, min(2*time.Second, p.MaxBackoff))
	p.HerokuRefill = orDefault(p.HerokuRefill, 800*time.Millisecond)
	p.HoldRefresh = orDefault(p.HoldRefresh, 250*time.Millisecond)
	return p
}

// reserve is Reserve with "none" as zero.
func (p Params) reserve() int { return max(p.Reserve, 0) }

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// validate checks Params after withDefaults.
func (p Params) validate() error {
	switch {
	case p.PerHour <= 0:
		return fmt.Errorf("ratelimit: PerHour must be a positive number of calls, got %d", p.PerHour)
	case p.Burst <= p.reserve():
		return fmt.Errorf("ratelimit: Burst (%d) must exceed Reserve (%d), or background calls could never run",
			p.Burst, p.Reserve)
	case p.Scope != ScopeAccount && p.Scope != ScopeInstance:
		return fmt.Errorf("ratelimit: unknown %v", p.Scope)
	case p.MaxWait < 0, p.Backoff < 0, p.MaxBackoff < 0, p.HerokuRefill < 0, p.HoldRefresh < 0:
		return errors.New("ratelimit: durations must not be negative")
	case p.MaxBackoff < p.Backoff:
		return fmt.Errorf("ratelimit: MaxBackoff (%s) is shorter than Backoff (%s)", p.MaxBackoff, p.Backoff)
	}
	return nil
}

// WithDefaults returns p with every zero field set to the default its
// comment gives, as New applies them; `rekey dev` uses it to explain the
// pace of its rotations.
func (p Params) WithDefaults() Params { return p.withDefaults() }
