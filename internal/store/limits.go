package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds the limits a claim enforces before it starts a rotation
// (claimScript, scripts.go): the cap on superseded credentials waiting per
// instance, which applies to every request (API, CLI, scheduler, a task
// from another app), and the customer's limits on the dashboard's button.
// Both are checked and recorded in the claim's one script, so two requests
// at the same moment cannot both pass.

// Refusal reasons, as Refusal.Reason reports them.
const (
	// RefusedPreviousCap: the instance already has MaxPrevious superseded
	// credentials waiting for revocation (REKEY_MAX_PREVIOUS).
	RefusedPreviousCap = "previous_cap"
	// RefusedCustomerGrace: a customer asked while a previous credential
	// still waits (REKEY_CUSTOMER_ONE_PER_GRACE).
	RefusedCustomerGrace = "customer_grace"
	// RefusedCustomerDaily: a customer used up the day's rotations
	// (REKEY_CUSTOMER_ROTATIONS_PER_DAY).
	RefusedCustomerDaily = "customer_daily"
)

// customerWindow is the span the customer's daily cap counts over.
const customerWindow = 24 * time.Hour

// Refusal says why a claim started no rotation, and when it may pass.
type Refusal struct {
	// Reason is RefusedPreviousCap, RefusedCustomerGrace or RefusedCustomerDaily.
	Reason string
	// Until is when the limit next lets a request through: the earliest
	// (cap) or latest (customer grace) revoke time of the waiting
	// credentials, or when the oldest rotation of the day leaves the
	// 24-hour window. It may be in the past when a revocation is overdue.
	Until time.Time
	// Count is how many credentials wait (previous_cap, customer_grace) or
	// how many customer rotations the 24 hours hold (customer_daily).
	Count int
}

// CustomerLimits are the limits on rotations a customer starts from the
// dashboard. A RotationRequest that carries them is a customer's.
type CustomerLimits struct {
	// PerDay caps the rotations started in any 24 hours; 0 means no cap.
	PerDay int
	// OnePerGrace refuses a rotation while a previous credential waits.
	OnePerGrace bool
}

// WithMaxPrevious caps how many superseded credentials one instance may
// have waiting for revocation: a claim beyond it starts nothing and
// reports RefusedPreviousCap. Zero (the default) means no cap.
func WithMaxPrevious(n int) Option { return func(s *Store) { s.maxPrevious = max(n, 0) } }

// MaxPrevious returns the cap WithMaxPrevious set; 0 means none.
func (s *Store) MaxPrevious() int { return s.maxPrevious }

// customerRotationsKey is a ZSET of the rotations a customer started for
// one instance, member rotation id, scored by claim time in milliseconds;
// entries older than a day are dropped as the claim reads it.
func customerRotationsKey(instanceID string) string {
	return keyPrefix + "customer_rotations:" + instanceID
}

// CustomerRotations returns how many rotations customers started for the
// instance in the last 24 hours, and when the oldest of them started.
func (s *Store) CustomerRotations(ctx context.Context, instanceID string) (int, time.Time, error) {
	from := strconv.FormatInt(ms(s.now().Add(-customerWindow))+1, 10)
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, customerRotationsKey(instanceID),
		&redis.ZRangeBy{Min: from, Max: "+inf"}).Result()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count customer rotations: %w", err)
	}
	if len(zs) == 0 {
		return 0, time.Time{}, nil
	}
	return len(zs), time.UnixMilli(int64(zs[0].Score)).UTC(), nil
}

// limitArgs returns the claim's ARGV for the limits: max previous,
// customer ("1"), one per grace ("1"), per day.
func (s *Store) limitArgs(r RotationRequest) []any {
	customer, one, perDay := "", "", 0
	if c := r.Customer; c != nil {
		customer, perDay = "1", c.PerDay
		if c.OnePerGrace {
			one = "1"
		}
	}
	return []any{s.maxPrevious, customer, one, perDay}
}

// refusalFrom reads the refusal of a claim reply {status, rotation id,
// state, reason, until ms, count}.
func refusalFrom(res []any) *Refusal {
	str := func(i int) string { v, _ := res[i].(string); return v }
	n, _ := res[5].(int64)
	return &Refusal{Reason: str(3), Until: fromMS(str(4)), Count: int(n)}
}

// luaLimits is the claim's check of the limits. limits returns nil when the
// request may start a rotation, or {reason, until ms, count, sentence}.
// KEYS and ARGV are claimScript's: KEYS[3] previous zset, KEYS[9] customer
// rotations zset, ARGV[3] now ms, ARGV[12..15] limitArgs.
const luaLimits = `
local function limits()
  local now = tonumber(ARGV[3])
  local n = redis.call('ZCARD', KEYS[3])
  local cap = tonumber(ARGV[13]) or 0
  if cap > 0 and n >= cap then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {'previous_cap', first[2], n, n .. ' superseded credentials already wait for revocation, the most allowed (REKEY_MAX_PREVIOUS=' .. cap .. ')'}
  end
  if ARGV[14] ~= '1' then return nil end
  if ARGV[15] == '1' and n > 0 then
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    return {'customer_grace', last[2], n, 'a previous credential still waits for revocation'}
  end
  local per = tonumber(ARGV[16]) or 0
  if per > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - 86400000)
    local used = redis.call('ZCARD', KEYS[9])
    if used >= per then
      local first = redis.call('ZRANGE', KEYS[9], 0, 0, 'WITHSCORES')
      return {'customer_daily', tostring(tonumber(first[2]) + 86400000), used, used .. ' customer rotations in 24 hours'}
    end
  end
  return nil
end
local function count_customer()
  if ARGV[14] == '1' then
    redis.call('ZADD', KEYS[9], ARGV[3], ARGV[1])
    redis.call('PEXPIRE', KEYS[9], 86400000)
  end
end
`
