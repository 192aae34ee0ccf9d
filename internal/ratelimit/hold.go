package ratelimit

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// backoffScript pauses a budget after Heroku answered 429.
//
// KEYS[1] is the budget's hold key, KEYS[2] its backoff key. ARGV[1] is the
// first pause in ms, ARGV[2] the longest. The pause doubles the last one when
// the backoff key still remembers it (it lives twice as long as the pause), so
// a 429 soon after a pause ends means the pause was too short. A 429 that
// arrives while a 429 pause runs answers a call made before the pause, and
// changes nothing. A longer pause already running is kept.
//
// It returns {pause in force in ms, 1 if this call set it else 0}.
var backoffScript = redis.NewScript(`
local ttl = redis.call("PTTL", KEYS[1])
if ttl > 0 and redis.call("GET", KEYS[1]) == "429" then
  return {ttl, 0}
end
local ms = tonumber(ARGV[1])
local last = tonumber(redis.call("GET", KEYS[2]))
if last then
  ms = math.min(last * 2, tonumber(ARGV[2]))
end
redis.call("SET", KEYS[2], ms, "PX", ms * 2)
ms = math.max(ms, ttl)
redis.call("SET", KEYS[1], "429", "PX", ms)
return {ms, 1}
`)

// slowScript pauses a budget because Heroku's RateLimit-Remaining ran low.
//
// KEYS[1] is the budget's hold key, KEYS[2] its backoff key. ARGV[1] is the
// pause in ms; ARGV[2] is "1" when the call succeeded, which ends a run of
// 429s. A running pause is lengthened, never shortened, and keeps its kind.
//
// It returns {pause in force in ms, 1 if this call set it else 0}.
var slowScript = redis.NewScript(`
if ARGV[2] == "1" then
  redis.call("DEL", KEYS[2])
end
local ttl = redis.call("PTTL", KEYS[1])
local ms = tonumber(ARGV[1])
if ttl >= ms then
  return {ttl, 0}
end
local kind = redis.call("GET", KEYS[1]) or "low"
redis.call("SET", KEYS[1], kind, "PX", ms)
return {ms, 1}
`)

// Observe tells the Limiter how Heroku answered a call for addonID: its HTTP
// status and RateLimit-Remaining header (negative when absent). A 429 pauses
// every process on the budget, for longer after each 429 that follows a
// pause; a Remaining below Params.LowWater pauses them in proportion to the
// shortfall, long enough for Heroku to refill it. Observe makes at most one
// Redis round trip, and none on most calls. Safe for concurrent use.
func (l *Limiter) Observe(addonID string, remaining int, status int) {
	keys, err := keysFor(l.p.Scope, addonID)
	if err != nil || l.ctx.Err() != nil {
		return
	}
	ok := status < http.StatusBadRequest
	switch {
	case status == http.StatusTooManyRequests:
		l.setStreak(keys, true)
		l.hold(keys, backoffScript, &l.stats.backoffs, l.p.Backoff.Milliseconds(), l.p.MaxBackoff.Milliseconds())
	case remaining >= 0 && remaining < l.p.LowWater:
		reset := 0
		if ok && l.setStreak(keys, false) {
			reset = 1
		}
		l.hold(keys, slowScript, &l.stats.slowdowns, l.lowWaterPause(remaining).Milliseconds(), reset)
	case ok && l.setStreak(keys, false):
		if err := l.rdb.Del(l.ctx, keys.backoff).Err(); err != nil {
			l.stats.errors.Add(1)
		}
	}
}

// lowWaterPause is how long Heroku takes to refill the tokens missing below
// the low-water mark, at most MaxBackoff.
func (l *Limiter) lowWaterPause(remaining int) time.Duration {
	return min(time.Duration(l.p.LowWater-remaining)*l.p.HerokuRefill, l.p.MaxBackoff)
}

// hold runs one of the hold scripts, counts the pause in set when the script
// set it, and applies the pause in force to this process at once, to every
// budget it pauses (with ScopeInstance every instance's: keysFor); other
// processes see it within HoldRefresh.
func (l *Limiter) hold(keys scopeKeys, s *redis.Script, set *atomic.Uint64, args ...any) {
	res, err := s.Run(l.ctx, l.rdb, []string{keys.hold, keys.backoff}, args...).Int64Slice()
	if err != nil || len(res) != 2 {
		l.stats.errors.Add(1)
		return
	}
	if res[1] == 1 {
		set.Add(1)
	}
	until := time.Now().Add(time.Duration(res[0]) * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.buckets {
		if b.keys.hold == keys.hold {
			b.extendHold(until)
			b.nudge() // its waiters may now have to be told to come back later
		}
	}
	for rate, m := range l.memos {
		if m.hold == keys.hold && until.After(m.holdUntil) {
			m.holdUntil = until // the next caller must not trust a fresh holdChecked alone
			l.memos[rate] = m
		}
	}
}

// setStreak records whether the last answer for keys was a 429, and reports
// whether it was before.
func (l *Limiter) setStreak(keys scopeKeys, on bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.streaks[keys.hold]
	if on {
		l.streaks[keys.hold] = true
	} else {
		delete(l.streaks, keys.hold)
	}
	return was
}
