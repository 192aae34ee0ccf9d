package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file gives a deprovisioned instance's keys an expiry once nothing
// waits on them (case 14 of issue 8), and takes it away again when the
// instance is registered anew. Cancelled rotations expire like finished
// ones (claimScript).
//
// An instance's keys are its hash (registration, schedule and token
// fields), its history list (and the audit stream of earlier versions, if
// it was never read since) and its current credential's hash; its previous
// zset is gone once empty, its revoked credentials and finished rotations
// expire on their own.

// DefaultAuditRetention is how long a deprovisioned instance's keys, its
// audit trail included, stay once nothing waits on them
// (REKEY_AUDIT_RETENTION).
const DefaultAuditRetention = 30 * 24 * time.Hour

// WithAuditRetention sets how long a deprovisioned instance's keys stay
// once none of its credentials waits for revocation; zero or less keeps the
// default, DefaultAuditRetention.
func WithAuditRetention(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.auditRetention = d
		}
	}
}

// retiringKey is a ZSET of the deprovisioned instances whose keys have no
// expiry yet, scored by deprovisioning time in milliseconds. The
// deprovision script adds an instance; ExpireRetired takes it out when it
// sets the expiry, and a new registration (keep_instance) when it cancels
// the retirement.
func retiringKey() string { return keyPrefix + "retiring" }

// luaRetention holds the Lua functions that set and lift an instance's
// expiry; putInstanceScript and expireRetiredScript use them.
//
// expire_instance(ikey, ekey, lkey, cprefix, retiring, id, ttl): every key
// of the instance (its hash, history list, legacy event stream and current
// credential) expires in ttl seconds, and it leaves the retiring set.
// keep_instance(ikey, ekey, lkey, cprefix, retiring, id): lifts that expiry
// (PERSIST) and the retirement, for an instance registered again.
const luaRetention = `
local function instance_keys(ikey, ekey, lkey, cprefix)
  local keys = {ikey, ekey, lkey}
  local cur = redis.call('HGET', ikey, 'current')
  if cur and cur ~= '' then table.insert(keys, cprefix .. cur) end
  return keys
end
local function expire_instance(ikey, ekey, lkey, cprefix, retiring, id, ttl)
  for _, k in ipairs(instance_keys(ikey, ekey, lkey, cprefix)) do redis.call('EXPIRE', k, ttl) end
  redis.call('ZREM', retiring, id)
end
local function keep_instance(ikey, ekey, lkey, cprefix, retiring, id)
  for _, k in ipairs(instance_keys(ikey, ekey, lkey, cprefix)) do redis.call('PERSIST', k) end
  redis.call('ZREM', retiring, id)
end
`

// expireRetiredScript gives a deprovisioned instance's keys their expiry
// when nothing of it is in flight or waits for its revoke time.
//
// KEYS: expireRetiredKeys, one field per key, in order.
// ARGV: instance id, now ms, retention seconds, instance event cap, fleet
// event cap, retention as a sentence.
// Returns "expiring", "waiting" (a rotation in flight, a previous
// credential, or an unconfirmed one: deprovisionScript discards those, but
// one left over must not lose its record), or "live" (registered again, or
// gone: it leaves the set).
var expireRetiredScript = eventScript(luaRetention, `
if get(KEYS[1], 'deprovisioned_at') == '' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 'live'
end
if get(KEYS[1], 'inflight') ~= '' or redis.call('ZCARD', KEYS[3]) > 0 or
    redis.call('ZCARD', KEYS[7]) > 0 then
  return 'waiting'
end
emit(KEYS[2], KEYS[6], ARGV[4], ARGV[5], ARGV[1], 'expiring', '', '', ARGV[6], ARGV[2])
-- Written before the expiry is set: a history string this event creates
-- (the events of an earlier version still in their stream) expires too.
flush()
expire_instance(KEYS[1], KEYS[2], KEYS[8], KEYS[5], KEYS[4], ARGV[1], ARGV[3])
return 'expiring'
`)

// RetiringAfter returns up to limit deprovisioned instances whose keys have
// no expiry yet, longest deprovisioned first, starting after cursor c; the
// cursor of the last one; and whether none follows.
func (s *Store) RetiringAfter(ctx context.Context, c Cursor, limit int64) ([]string, Cursor, bool, error) {
	ids, _, next, done, err := s.duePage(ctx, retiringKey(), s.now(), c, limit)
	if err != nil {
		return nil, c, false, fmt.Errorf("retiring instances: %w", err)
	}
	return ids, next, done, nil
}

// ExpireRetired gives the keys of the deprovisioned instance id an expiry
// of the audit retention, with an "expiring" event, once none of its
// credentials waits for revocation: no rotation in flight, no previous or
// unconfirmed credential, and no discarded or dead-lettered one. It reports whether it
// did. Revocations still waiting go on as usual; the instance is looked at
// again on the next sweep.
func (s *Store) ExpireRetired(ctx context.Context, id string) (bool, error) {
	n, err := s.ExpireRetiredPage(ctx, []string{id})
	return n == 1, err
}

// ExpireRetiredPage is ExpireRetired for each of ids, a share of the
// retiring set, and returns how many it gave an expiry. The fleet-wide
// sets that discarded and dead-lettered credentials wait in are scanned at
// most once for all of ids, and only when one of them has nothing else
// waiting: scanned once an instance, they cost a sweep the size of the
// revoke-due index times the number of instances.
func (s *Store) ExpireRetiredPage(ctx context.Context, ids []string) (int, error) {
	candidates, err := s.mayExpire(ctx, ids)
	if err != nil || len(candidates) == 0 {
		return 0, err
	}
	waiting, err := s.credentialsWait(ctx, candidates)
	if err != nil {
		return 0, err
	}
	expired := 0
	for _, id := range candidates {
		if waiting[id] {
			continue
		}
		ok, err := s.expireRetired(ctx, id)
		if err != nil {
			return expired, err
		}
		if ok {
			expired++
		}
	}
	return expired, nil
}

// mayExpire returns the ids expireRetiredScript would not answer "waiting"
// on its own (a rotation in flight, a previous or an unconfirmed
// credential), read in one pipeline: only those need the fleet-wide scan.
// The script checks the same again, atomically.
func (s *Store) mayExpire(ctx context.Context, ids []string) ([]string, error) {
	type reads struct {
		inst       *redis.SliceCmd
		prev, unco *redis.IntCmd
	}
	r := make([]reads, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			r[i] = reads{p.HMGet(ctx, instanceKey(id), "deprovisioned_at", "inflight"),
				p.ZCard(ctx, previousKey(id)), p.ZCard(ctx, unconfirmedKey(id))}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retiring instances: %w", err)
	}
	var out []string
	for i, id := range ids {
		f := r[i].inst.Val()
		deprovisioned, inflight := f[0] != nil && f[0] != "", f[1] != nil && f[1] != ""
		if deprovisioned && (inflight || r[i].prev.Val() > 0 || r[i].unco.Val() > 0) {
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

// expireRetired runs expireRetiredScript for id, whose credentials the
// caller found none waiting of, and expires its side keys with it.
func (s *Store) expireRetired(ctx context.Context, id string) (bool, error) {
	keys := newExpireRetiredKeys(id).list()
	args := []any{id, ms(s.now()), int64(s.auditRetention.Seconds()), s.eventsPerInstance, s.eventsGlobal,
		"kept " + s.auditRetention.String() + " after the last revocation"}
	res, err := expireRetiredScript.Run(ctx, s.rdb, keys, args...).Text()
	if err != nil {
		return false, scriptError("expire "+id, err)
	}
	if res != "expiring" {
		return false, nil
	}
	return true, s.expireSideKeys(ctx, id)
}

// expireSideKeys gives an expiring instance's side keys, written beside its
// registration (its sealed log_input_url, its database's location, and
// its OAuth tokens should deprovisioning not have deleted them), the
// same retention. A registration writes them again without an expiry
// (SaveLogInput; putInstanceScript, which also drops a location left from
// an instance of the same id that expired before it). A failure here
// leaves them until the next sweep finds nothing to do for the instance;
// they hold no live secret of a revoked credential.
func (s *Store) expireSideKeys(ctx context.Context, id string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Expire(ctx, logInputKey(id), s.auditRetention)
		p.Expire(ctx, databaseKey(id), s.auditRetention)
		p.Expire(ctx, oauthKey(id), s.auditRetention)
		return nil
	})
	if err != nil {
		return fmt.Errorf("expire side keys of %s: %w", id, err)
	}
	return nil
}

// expireRetiredKeys are the KEYS of expireRetiredScript, one field per key,
// in order.
type expireRetiredKeys struct {
	instance         string // KEYS[1] -> rekey:instance:<id>
	instanceEvents   string // KEYS[2] -> rekey:history:<id>
	previous         string // KEYS[3] -> rekey:previous:<id>
	retiring         string // KEYS[4] -> rekey:retiring
	credentialPrefix string // KEYS[5] -> rekey:cred:<id>: (the script appends credential ids)
	events           string // KEYS[6] -> rekey:events
	unconfirmed      string // KEYS[7] -> rekey:unconfirmed:<id>
	legacyEvents     string // KEYS[8] -> rekey:events:<id> (the stream of earlier versions)
}

func newExpireRetiredKeys(id string) expireRetiredKeys {
	return expireRetiredKeys{instance: instanceKey(id), instanceEvents: historyKey(id),
		previous: previousKey(id), retiring: retiringKey(), credentialPrefix: credentialKey(id, ""),
		events: eventsKey(), unconfirmed: unconfirmedKey(id), legacyEvents: legacyEventsKey(id)}
}

func (k expireRetiredKeys) list() []string {
	return []string{k.instance, k.instanceEvents, k.previous, k.retiring, k.credentialPrefix, k.events,
		k.unconfirmed, k.legacyEvents}
}

// credentialsWait returns which of ids have a credential in the
// revoke-due index or the dead-letter set. Discarded credentials are in no
// per-instance index, so both fleet-wide sets are scanned: for one id with
// its prefix (MATCH, filtered in Redis), for more once each, whole, every
// member's instance looked up among ids.
func (s *Store) credentialsWait(ctx context.Context, ids []string) (map[string]bool, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	match := ""
	if len(ids) == 1 {
		match = ids[0] + "/*"
	}
	waiting := map[string]bool{}
	for _, key := range []string{revokeDueKey(), deadKey()} {
		var cursor uint64
		for {
			// ZSCAN answers each member followed by its score.
			pairs, next, err := s.rdb.ZScan(ctx, key, cursor, match, 1000).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("credentials waiting: %w", err)
			}
			for i := 0; i < len(pairs); i += 2 {
				if id, _, ok := strings.Cut(pairs[i], "/"); ok && want[id] {
					waiting[id] = true
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return waiting, nil
}

// InstanceExpiry returns how long the keys of instance id have left: zero
// while they do not expire (a live instance, or one whose credentials still
// wait), ErrNotFound when they are gone.
func (s *Store) InstanceExpiry(ctx context.Context, id string) (time.Duration, error) {
	return s.expiry(ctx, instanceKey(id))
}

// RotationExpiry returns how long the record of rotation id has left: zero
// while it is in flight, ErrNotFound once it is gone.
func (s *Store) RotationExpiry(ctx context.Context, id string) (time.Duration, error) {
	return s.expiry(ctx, rotationKey(id))
}

func (s *Store) expiry(ctx context.Context, key string) (time.Duration, error) {
	d, err := s.rdb.PTTL(ctx, key).Result()
	switch {
	case err != nil:
		return 0, fmt.Errorf("expiry: %w", err)
	case d == -2: // go-redis passes PTTL's -2 (no key) and -1 (no expiry) through as is
		return 0, fmt.Errorf("expiry of %s: %w", key, ErrNotFound)
	case d < 0:
		return 0, nil
	}
	return d, nil
}
