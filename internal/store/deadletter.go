package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// deadKey is a ZSET of the revocations set aside after a permanent failure
// (the dead-letter set), member "instance_id/credential_id", scored by when
// they were set aside, in milliseconds. An entry leaves the revoke-due
// index when it enters this set, so the reconcile sweep stops running it;
// its credential hash keeps dead_at and dead_reason. Only an operator
// brings it back (RetryDeadRevocation). It holds no secret.
func deadKey() string { return keyPrefix + "revoke_dead" }

// Reasons a revocation is set aside, stored as its dead_reason and as the
// detail of its "revocation_dead" event.
const (
	// DeadRefused: the revoke task was refused permanently (the issuer
	// answered a 4xx other than 404, or the credential was unknown).
	DeadRefused = "refused"
)

// DeadRevocation is one entry of the dead-letter set.
type DeadRevocation struct {
	InstanceID   string    `json:"instance_id"`
	CredentialID string    `json:"credential_id"`
	State        string    `json:"state,omitempty"`
	RevokeAt     time.Time `json:"revoke_at,omitzero"`
	DeadAt       time.Time `json:"dead_at"`
	Reason       string    `json:"reason,omitempty"`
}

// ID names the entry as operators give it back: "instance_id/credential_id".
func (d DeadRevocation) ID() string { return d.InstanceID + "/" + d.CredentialID }

// ParseDeadID splits an entry's ID into instance and credential ids.
func ParseDeadID(id string) (instanceID, credID string, err error) {
	inst, cred, ok := strings.Cut(id, "/")
	if !ok || !ValidID(inst) || !ValidID(cred) {
		return "", "", fmt.Errorf("%q is not a dead revocation id: use INSTANCE_ID/CREDENTIAL_ID", id)
	}
	return inst, cred, nil
}

// deadKeys are the KEYS of deadScript and retryDeadScript, one field per
// key, in order: from is the set the entry leaves, to the one it joins.
type deadKeys struct {
	from           string // KEYS[1] -> rekey:revoke_due (deadScript), rekey:revoke_dead (retryDeadScript)
	to             string // KEYS[2] -> rekey:revoke_dead (deadScript), rekey:revoke_due (retryDeadScript)
	credential     string // KEYS[3] -> rekey:cred:<instance id>:<credential id>
	instanceEvents string // KEYS[4] -> rekey:history:<instance id>
	events         string // KEYS[5] -> rekey:events
}

// newDeadKeys returns deadScript's keys: from the revoke-due zset to the
// dead-letter zset.
func newDeadKeys(instanceID, credID string) deadKeys {
	return deadKeys{from: revokeDueKey(), to: deadKey(), credential: credentialKey(instanceID, credID),
		instanceEvents: historyKey(instanceID), events: eventsKey()}
}

// back returns retryDeadScript's keys: the same, the other way round.
func (k deadKeys) back() deadKeys { k.from, k.to = k.to, k.from; return k }

func (k deadKeys) list() []string {
	return []string{k.from, k.to, k.credential, k.instanceEvents, k.events}
}

// deadScript sets a due revocation aside.
//
// KEYS: deadKeys from the revoke-due zset to the dead-letter zset.
// ARGV: member, instance id, credential id, now ms, reason, instance event
// cap, fleet event cap.
// Returns "dead", or "gone" when the entry is no longer due (revoked or
// moved meanwhile).
var deadScript = eventScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'gone' end
redis.call('ZREM', KEYS[1], ARGV[1])
if get(KEYS[3], 'revoked_at') ~= '' then return 'gone' end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'dead_at', ARGV[4], 'dead_reason', ARGV[5])
end
emit(KEYS[4], KEYS[5], ARGV[6], ARGV[7], ARGV[2], 'revocation_dead', get(KEYS[3], 'rotation_id'), ARGV[3], ARGV[5], ARGV[4])
return 'dead'
`)

// SetRevocationDead moves a due revocation to the dead-letter set, with a
// "revocation_dead" event whose detail is reason. It reports false, and
// does nothing, when r is no longer due.
func (s *Store) SetRevocationDead(ctx context.Context, r Revocation, reason string) (bool, error) {
	keys := newDeadKeys(r.InstanceID, r.CredentialID).list()
	args := []any{r.InstanceID + "/" + r.CredentialID, r.InstanceID, r.CredentialID, ms(s.now()), reason,
		s.eventsPerInstance, s.eventsGlobal}
	res, err := deadScript.Run(ctx, s.rdb, keys, args...).Text()
	if err != nil {
		return false, scriptError("set revocation dead", err)
	}
	return res == "dead", nil
}

// retryDeadScript brings a dead revocation back to the revoke-due index at
// its revoke time.
//
// KEYS: deadKeys from the dead-letter zset to the revoke-due zset.
// ARGV: member, instance id, credential id, now ms, instance event cap,
// fleet event cap, who asked.
// Returns the revoke time in ms, or "" when the entry is not dead (or its
// credential was revoked meanwhile).
var retryDeadScript = eventScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return '' end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], 'dead_at', 'dead_reason')
if get(KEYS[3], 'revoked_at') ~= '' then return '' end
local at = get(KEYS[3], 'revoke_at')
if at == '' then at = ARGV[4] end
redis.call('ZADD', KEYS[2], at, ARGV[1])
emit(KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[2], 'revocation_retried', get(KEYS[3], 'rotation_id'), ARGV[3], ARGV[7], ARGV[4])
return at
`)

// RetryDeadRevocation moves a dead revocation back to the revoke-due index,
// with a "revocation_retried" event naming by, and returns it for its
// revoke task to be enqueued. It returns nil when the entry is not dead.
func (s *Store) RetryDeadRevocation(ctx context.Context, instanceID, credID, by string) (*Revocation, error) {
	keys := newDeadKeys(instanceID, credID).back().list()
	args := []any{instanceID + "/" + credID, instanceID, credID, ms(s.now()), s.eventsPerInstance, s.eventsGlobal, by}
	at, err := retryDeadScript.Run(ctx, s.rdb, keys, args...).Text()
	if err != nil {
		return nil, scriptError("retry dead revocation", err)
	}
	if at == "" {
		return nil, nil
	}
	return &Revocation{InstanceID: instanceID, CredentialID: credID, RevokeAt: fromMS(at)}, nil
}

// DeadRevocations returns up to limit entries of the dead-letter set from
// offset, oldest first.
func (s *Store) DeadRevocations(ctx context.Context, offset, limit int64) ([]DeadRevocation, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, deadKey(), offset, offset+limit-1).Result()
	if err != nil {
		return nil, fmt.Errorf("dead revocations: %w", err)
	}
	pipe := s.rdb.Pipeline()
	out := make([]DeadRevocation, 0, len(zs))
	cmds := make([]*redis.SliceCmd, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		inst, cred, _ := strings.Cut(m, "/")
		out = append(out, DeadRevocation{InstanceID: inst, CredentialID: cred, DeadAt: time.UnixMilli(int64(z.Score)).UTC()})
		cmds = append(cmds, pipe.HMGet(ctx, credentialKey(inst, cred), "state", "revoke_at", "dead_reason"))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dead revocations: %w", err)
	}
	for i, c := range cmds {
		v := c.Val()
		out[i].State, _ = v[0].(string)
		at, _ := v[1].(string)
		out[i].RevokeAt = fromMS(at)
		out[i].Reason, _ = v[2].(string)
	}
	return out, nil
}

// IsRevocationDead reports whether the revocation is in the dead-letter set.
func (s *Store) IsRevocationDead(ctx context.Context, instanceID, credID string) (bool, error) {
	_, err := s.rdb.ZScore(ctx, deadKey(), instanceID+"/"+credID).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("dead revocation: %w", err)
	}
	return true, nil
}

// CountDeadRevocations counts the entries of the dead-letter set.
func (s *Store) CountDeadRevocations(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, deadKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("count dead revocations: %w", err)
	}
	return n, nil
}
