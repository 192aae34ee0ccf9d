package ratelimit

import "errors"

// KeyPrefix starts the GCRA keys redis_rate writes for rekey's budgets: it
// adds "rate:" to the "rekey:" keys keysFor names. A key of it is rekey's,
// written by any process that calls Heroku, and expires once the budget
// has refilled.
const KeyPrefix = "rate:rekey:"

// scopeKeys are the Redis keys of one budget.
type scopeKeys struct {
	rate    string // GCRA state, handed to redis_rate
	hold    string // a pause every process obeys
	backoff string // the last 429 pause, so the next one can double it
}

// keysFor names the Redis keys of the budget that a call for addonID draws on.
// With ScopeAccount they are
//
//	rate:rekey:ratelimit:{account}    GCRA theoretical arrival time; redis_rate
//	                                  owns the value and adds the "rate:" prefix
//	rekey:ratelimit:{account}:hold    string "429" or "low", PX = pause left
//	rekey:ratelimit:{account}:backoff last 429 pause in ms, PX = twice that
//
// and with ScopeInstance "addon:{<add-on id>}" takes the place of "{account}"
// in the GCRA key alone: the pause stays the account's. Heroku does not say
// whether a partner token's budget is the account's or the authorization's
// (ScopeInstance is a bet on the latter), and a 429 or a low
// RateLimit-Remaining is what says so: when the bet is wrong, one instance's
// 429 is the whole account's, and every instance must pause, or each would
// earn its own 429 before it paused. When the bet is right, an instance's
// own budget seldom runs low from rekey's few calls, and a pause costs
// little. The braces are a Redis Cluster hash tag: the keys a Lua script
// touches together (the hold and the backoff) share a slot.
func keysFor(s Scope, addonID string) (scopeKeys, error) {
	const account = "rekey:ratelimit:{account}"
	keys := scopeKeys{rate: account, hold: account + ":hold", backoff: account + ":backoff"}
	if s == ScopeInstance {
		if addonID == "" {
			return scopeKeys{}, errors.New("ratelimit: empty add-on id with a per-instance budget")
		}
		keys.rate = "rekey:ratelimit:addon:{" + addonID + "}"
	}
	return keys, nil
}
