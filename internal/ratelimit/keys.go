package ratelimit

import "errors"

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
// and with ScopeInstance "addon:{<add-on id>}" takes the place of "{account}".
// The braces are a Redis Cluster hash tag: one budget's keys share a slot, so
// a Lua script may touch several of them.
func keysFor(s Scope, addonID string) (scopeKeys, error) {
	tag := "{account}"
	if s == ScopeInstance {
		if addonID == "" {
			return scopeKeys{}, errors.New("ratelimit: empty add-on id with a per-instance budget")
		}
		tag = "addon:{" + addonID + "}"
	}
	base := "rekey:ratelimit:" + tag
	return scopeKeys{rate: base, hold: base + ":hold", backoff: base + ":backoff"}, nil
}
