package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
)

// A credential registered as current (current_credential_id) was minted
// at provisioning, out of rekey's sight: rekey holds no fingerprint of its
// config, so a mint that answers a new id with that config would pass the
// config_reused check (savePendingScript), change nothing on Heroku, and
// have the provisioning credential revoked after the grace while the app
// still runs on it (I1). Its fingerprint is learned once, from the
// registration's current_config or from the config Heroku holds, before
// the instance's first rotation mints.

// Learned says what LearnCurrentFingerprint did.
type Learned string

const (
	// FingerprintLearned: the credential now carries the config's
	// fingerprint.
	FingerprintLearned Learned = "learned"
	// FingerprintKnown: the credential carried one already (this config's
	// or another's); it is left as it is.
	FingerprintKnown Learned = "known"
	// FingerprintNotCurrent: the instance is unknown or deprovisioned, or
	// another credential is current; nothing is written.
	FingerprintNotCurrent Learned = "not_current"
	// FingerprintMinted: the config is that of a credential rekey minted
	// for the instance (its minted set), or of a previous or unconfirmed
	// one: taking it for the current credential's would let a read-back
	// mistake that credential's config for the current one's
	// (IsCurrentConfig), so no fingerprint is written.
	FingerprintMinted Learned = "minted"
	// FingerprintLiveElsewhere: the config is that of a live credential of
	// another instance (the fleet's index of live configs): the instance
	// was provisioned with another's credential, before rekey. No
	// fingerprint is written, and the index keeps the other's entry only;
	// the credential's revocation waits until the other instance's
	// credential is revoked (Store.LiveElsewhere).
	FingerprintLiveElsewhere Learned = "live_elsewhere"
	// FingerprintUnknown: the config read was incomplete
	// (NoteCurrentConfigIncomplete); no fingerprint is written.
	FingerprintUnknown Learned = "unknown"
)

// learnFingerprintScript gives the instance's current credential the
// fingerprint of its config, when it has none. It is conservative: a
// wrong fingerprint would make IsCurrentConfig take another credential's
// config for the current one's, and a discarded credential could then be
// revoked while Heroku holds part of it.
//
// KEYS: learnFingerprintKeys, one field per key, in order.
// ARGV: credential id, the config's fingerprint under the first key, its
// fingerprints under every key one after the other (configFingerprints;
// both "" when no whole config could be read), now ms, the minted set's
// ttl seconds (the rotation ttl, as savePendingScript keeps it).
// Returns a Learned word: "learned", "known", "not_current", "minted",
// "live_elsewhere" or "unknown". Whenever it writes no fingerprint on a current credential
// without one, it notes the attempt ("f_tried", now ms), so that the
// rotate handler reads Heroku's config for it once only
// (NeedsCurrentFingerprint).
var learnFingerprintScript = redis.NewScript(luaFingerprintIn + luaLive + `
local inst = redis.call('HMGET', KEYS[1], 'current', 'deprovisioned_at', 'registered_at')
if (inst[3] or '') == '' or (inst[2] or '') ~= '' or (inst[1] or '') ~= ARGV[1] then return 'not_current' end
local c = redis.call('HMGET', KEYS[2], 'state', 'f')
if c[1] ~= 'current' then return 'not_current' end
if (c[2] or '') ~= '' then return 'known' end
if ARGV[2] == '' then
  redis.call('HSET', KEYS[2], 'f_tried', ARGV[4])
  return 'unknown'
end
local n = #ARGV[2]
-- held(f): whether f is the config's fingerprint under one of the keys.
local function held(f) return fingerprintIn(ARGV[3], n, f) end
local function refuse()
  redis.call('HSET', KEYS[2], 'f_tried', ARGV[4])
  return 'minted'
end
for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if held(string.sub(m, 1, n)) then return refuse() end
end
local live = redis.call('ZRANGE', KEYS[4], 0, -1)
for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do live[#live + 1] = id end
for _, id in ipairs(live) do
  local f = redis.call('HGET', KEYS[6] .. id, 'f')
  if f and f ~= '' and held(f) then return refuse() end
end
-- The config of a live credential of another instance (the fleet's index
-- of live configs): this instance was provisioned with another's
-- credential, a mix-up before rekey. The index keeps the other's entry
-- alone, so that no revocation of this instance's takes it out, and no
-- fingerprint is written. The fingerprint is kept as f_elsewhere instead:
-- the credential's revocation is refused while the config is still live
-- elsewhere (Store.LiveElsewhere), as revoking it could break the other
-- instance's apps.
if live_any(KEYS[7], ARGV[3], n) then
  redis.call('HSET', KEYS[2], 'f_tried', ARGV[4], 'f_elsewhere', ARGV[2])
  return 'live_elsewhere'
end
redis.call('HSET', KEYS[2], 'f', ARGV[2])
-- Until its revocation the config is in the fleet's index of live configs
-- (livePrefix), so that no other instance's mint may hand it out.
local set, m = live_at(KEYS[7], ARGV[2])
if set then redis.call('SADD', set, m) end
-- A later mint of this config under another id is refused for the
-- rotation ttl after the credential is revoked too (markRevokedScript);
-- until then its "f" refuses it.
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2] .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tonumber(ARGV[4]) - tonumber(ARGV[5]) * 1000))
redis.call('EXPIRE', KEYS[3], ARGV[5])
return 'learned'
`)

// LearnCurrentFingerprint gives credID, when it is the instance's current
// credential and carries no fingerprint, the fingerprint of config (the
// config the app holds, the values never stored), and adds it to the
// instance's minted set, so that a mint answering another id with that
// config is refused (ErrConfigReused). It writes nothing when credID is
// not current, has a fingerprint already, or config is one rekey minted
// for the instance (Learned says which). Safe to repeat and for
// concurrent use.
func (s *Store) LearnCurrentFingerprint(ctx context.Context, instanceID, credID string, config map[string]secret.String) (Learned, error) {
	if !ValidID(credID) || len(config) == 0 {
		return FingerprintNotCurrent, nil
	}
	fp, fps, err := s.configFingerprints(ctx, config)
	if err != nil {
		return "", fmt.Errorf("learn the current fingerprint: %w", err)
	}
	return s.learnFingerprint(ctx, instanceID, credID, fp, fps)
}

// NoteCurrentConfigIncomplete records that the config Heroku holds for
// the instance lacks one of its config vars, so that credID, its current
// credential without a fingerprint, gets none and Heroku is not read again
// for it (NeedsCurrentFingerprint). Safe to repeat.
func (s *Store) NoteCurrentConfigIncomplete(ctx context.Context, instanceID, credID string) (Learned, error) {
	if !ValidID(credID) {
		return FingerprintNotCurrent, nil
	}
	return s.learnFingerprint(ctx, instanceID, credID, "", "")
}

func (s *Store) learnFingerprint(ctx context.Context, instanceID, credID, fp, fps string) (Learned, error) {
	keys := newLearnFingerprintKeys(instanceID, credID)
	res, err := learnFingerprintScript.Run(ctx, s.rdb, keys.list(), credID, fp, fps, ms(s.now()),
		int64(s.finishedTTL.Seconds())).Text()
	if err != nil {
		return "", scriptError("learn the current fingerprint", err)
	}
	return Learned(res), nil
}

// NeedsCurrentFingerprint reports whether credID, the instance's current
// credential as its caller read it, is one registered at provisioning (no
// rotation minted it) that carries no fingerprint yet, nor was ever tried
// for one: the rotate handler then reads the config Heroku holds, once per
// instance, before the first mint, to learn it. One Redis command.
func (s *Store) NeedsCurrentFingerprint(ctx context.Context, instanceID, credID string) (bool, error) {
	if credID == "" {
		return false, nil
	}
	v, err := s.rdb.HMGet(ctx, credentialKey(instanceID, credID), needsFingerprintFields...).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the current credential: %w", err)
	}
	return needsFingerprint(v), nil
}

// needsFingerprintFields are the fields of a credential that
// needsFingerprint reads, in order.
var needsFingerprintFields = []string{"state", "f", "rotation_id", "f_tried"}

// needsFingerprint reads an HMGET of needsFingerprintFields.
func needsFingerprint(v []any) bool {
	str := func(i int) string { x, _ := v[i].(string); return x }
	return str(0) == CredentialCurrent && str(1) == "" && str(2) == "" && str(3) == ""
}

// FirstReads reports, for each instance of ins, whether its next rotation
// starts with a read of the config Heroku holds (NeedsCurrentFingerprint),
// one round trip for them all: a plan counts that read among the
// rotation's Heroku calls.
func (s *Store) FirstReads(ctx context.Context, ins []Instance) ([]bool, error) {
	out := make([]bool, len(ins))
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ins))
	for i, in := range ins {
		if in.CurrentCredential != "" {
			cmds[i] = pipe.HMGet(ctx, credentialKey(in.ID, in.CurrentCredential), needsFingerprintFields...)
		}
	}
	if pipe.Len() == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the current credentials: %w", err)
	}
	for i, c := range cmds {
		out[i] = c != nil && needsFingerprint(c.Val())
	}
	return out, nil
}

// learnFingerprintKeys are the KEYS of learnFingerprintScript, one field
// per key, in order.
type learnFingerprintKeys struct {
	instance         string // KEYS[1] -> rekey:instance:<instance id>
	credential       string // KEYS[2] -> rekey:cred:<instance id>:<credential id>
	minted           string // KEYS[3] -> rekey:minted:<instance id>
	previous         string // KEYS[4] -> rekey:previous:<instance id>
	unconfirmed      string // KEYS[5] -> rekey:unconfirmed:<instance id>
	credentialPrefix string // KEYS[6] -> rekey:cred:<instance id>: (the script appends credential ids)
	livePrefix       string // KEYS[7] -> rekey:live: (the script appends a fingerprint's first byte, in hex)
}

func newLearnFingerprintKeys(instanceID, credID string) learnFingerprintKeys {
	return learnFingerprintKeys{instance: instanceKey(instanceID), credential: credentialKey(instanceID, credID),
		minted: mintedKey(instanceID), previous: previousKey(instanceID), unconfirmed: unconfirmedKey(instanceID),
		credentialPrefix: credentialKey(instanceID, ""), livePrefix: livePrefix()}
}

func (k learnFingerprintKeys) list() []string {
	return []string{k.instance, k.credential, k.minted, k.previous, k.unconfirmed, k.credentialPrefix, k.livePrefix}
}
