package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
)

// fingerprintKeyKey is a STRING: the keys of the keyed fingerprints that
// credentials keep of their configs (configFingerprints), sealed like every
// other secret rekey stores. It holds 32 random bytes, the key every
// fingerprint is taken under, then the fingerprint keys of the encryption
// keys held when it was created (seal.Sealer.MACKeys), under which
// versions before it took fingerprints. It outlives the encryption keys:
// `rekey keys reseal` moves it to a new first key like any sealed value,
// so dropping an old key of REKEY_ENCRYPTION_KEYS after the reseal leaves
// every fingerprint comparable, those of earlier versions included. The
// first worker to start creates it, or a registration or import before
// that, each once its keys pass CheckSealedByTheFleet; a mint creates it
// again should it be deleted while workers run.
func fingerprintKeyKey() string { return keyPrefix + "fingerprint_key" }

// fingerprintKeySize is the length in bytes of each key it holds.
const fingerprintKeySize = 32

// fingerprintKeyRecheck is how long a process uses the fingerprint key it
// read before reading it again, so that processes agree within that long
// should it be replaced (deleted and created anew).
const fingerprintKeyRecheck = time.Minute

// configFingerprintLen is how many bytes of a config's fingerprint a
// credential keeps: a false match, which would fail one rotation, comes
// once in 2^64 comparisons.
const configFingerprintLen = 8

// ErrFingerprintKey means the fingerprint key cannot be opened with any key
// of REKEY_ENCRYPTION_KEYS: without it no mint can be checked for a config
// reused under another id (I1), so none is made.
var ErrFingerprintKey = fmt.Errorf("%w: the fingerprint key (%s) opens with no key of REKEY_ENCRYPTION_KEYS; "+
	"add back the key it was sealed under (see 'rekey keys status')", ErrUnreadable, fingerprintKeyKey())

// fingerprintKeys are the fingerprint key's contents, as one process read
// them.
type fingerprintKeys struct {
	sealed string   // as stored, to tell a replaced key at the next read
	key    []byte   // every fingerprint is taken under it
	legacy [][]byte // earlier versions' fingerprint keys
	readAt time.Time
}

// configFingerprints are the keyed fingerprints of a credential's config,
// its vars in name order, each name and value after its length, as bytes,
// configFingerprintLen bytes each. fp, under the fingerprint key, is what a
// credential keeps (field "f") and the instance's minted set remembers, so
// that a later mint answering with the same config under another id is
// refused before anything is pushed. all is fp followed by the
// fingerprints under the keys of earlier versions (the fingerprint key's
// legacy keys, and the encryption keys held), which is what a stored one
// is compared with. It fails when the fingerprint key cannot be read: a
// mint is never saved unchecked.
func (s *Store) configFingerprints(ctx context.Context, config map[string]secret.String) (fp, all string, err error) {
	keys, err := s.fingerprintKeys(ctx)
	if err != nil {
		return "", "", err
	}
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(config)) {
		v := config[name].Reveal()
		b = append(binary.AppendUvarint(b, uint64(len(name))), name...)
		b = append(binary.AppendUvarint(b, uint64(len(v))), v...)
	}
	var out []byte
	var seen [][]byte
	for _, k := range append(append([][]byte{keys.key}, keys.legacy...), s.sealer.MACKeys()...) {
		// The legacy keys are those of the encryption keys held when the
		// fingerprint key was made, mostly the ones held now: each key's
		// fingerprint is listed once, so a script checks it once.
		if slices.ContainsFunc(seen, func(o []byte) bool { return bytes.Equal(o, k) }) {
			continue
		}
		seen = append(seen, k)
		m := hmac.New(sha256.New, k)
		m.Write(b)
		out = append(out, m.Sum(nil)[:configFingerprintLen]...)
	}
	return string(out[:configFingerprintLen]), string(out), nil
}

// IsCurrentConfig reports whether config is, var for var, the config of
// the instance's current credential, by its fingerprint (field "f"): a
// config read back from Heroku that is the current credential's holds no
// part of any other credential, whatever values they share. It is false
// when the current credential has no fingerprint (registered, not minted
// by rekey).
func (s *Store) IsCurrentConfig(ctx context.Context, instanceID string, config map[string]secret.String) (bool, error) {
	cur, err := s.rdb.HGet(ctx, instanceKey(instanceID), "current").Result()
	if errors.Is(err, redis.Nil) || err == nil && cur == "" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the current credential: %w", err)
	}
	f, err := s.rdb.HGet(ctx, credentialKey(instanceID, cur), "f").Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the current credential's fingerprint: %w", err)
	}
	_, all, err := s.configFingerprints(ctx, config)
	if err != nil {
		return false, err
	}
	for i := 0; i+configFingerprintLen <= len(all); i += configFingerprintLen {
		if all[i:i+configFingerprintLen] == f {
			return true, nil
		}
	}
	return false, nil
}

// CheckFingerprintKey reads the fingerprint key, creating it when Redis
// holds none. The rotate handler calls it before minting, so that a key
// that cannot be opened (ErrFingerprintKey) fails the rotation before the
// issuer mints a credential that could not be saved.
func (s *Store) CheckFingerprintKey(ctx context.Context) error {
	_, err := s.fingerprintKeys(ctx)
	return err
}

// ErrNotTheFleetsKeys means REKEY_ENCRYPTION_KEYS is not the fleet's while
// Redis holds no fingerprint key yet: a running process announced keys
// that do not hold this one's sealing key, or the values rekey already
// sealed (an instance's OAuth tokens) open with none of its keys.
var ErrNotTheFleetsKeys = fmt.Errorf("%w: REKEY_ENCRYPTION_KEYS is not the value the values already stored were "+
	"sealed with, or running processes hold (see 'rekey keys status')", ErrUnreadable)

// fleetSample is how many sealed values CheckSealedByTheFleet tries to
// open when Redis holds no fingerprint key.
const fleetSample = 16

// CheckSealedByTheFleet returns ErrFingerprintKey when Redis holds a
// fingerprint key that no key of the store's REKEY_ENCRYPTION_KEYS opens:
// the processes that sealed it hold other keys, and what this store seals
// they cannot open. With no fingerprint key yet (a fleet whose first
// worker has not started), what else Redis holds is compared instead
// (checkKeysWithoutFingerprintKey), and when that shows the fleet can open
// what this store seals, the fingerprint key is made under this store's
// keys: every later check is then the one read, and a worker started on
// other keys refuses to take tasks at once instead of failing on every
// token this store sealed.
func (s *Store) CheckSealedByTheFleet(ctx context.Context) error {
	v, err := s.rdb.Get(ctx, fingerprintKeyKey()).Result()
	if errors.Is(err, redis.Nil) {
		return s.checkKeysWithoutFingerprintKey(ctx)
	}
	if err != nil {
		return fmt.Errorf("read the fingerprint key: %w", err)
	}
	if _, err := s.sealer.Open(v, fingerprintKeyKey()+"#"); err != nil {
		return ErrFingerprintKey
	}
	// Opened, it must also hold keys (fingerprintKeys checks their length).
	return s.CheckFingerprintKey(ctx)
}

// readable is how many of the values st tried open with one of the keys.
func readable(st SealedStatus) int64 {
	var n int64
	for _, k := range st.ByKey {
		n += k
	}
	return n
}

// checkKeysWithoutFingerprintKey is CheckSealedByTheFleet's comparison
// when Redis holds no fingerprint key. Every running process must hold the
// key this store seals under, and some of the values already sealed
// (fleetSample of them at most) must open with this store's keys; either
// failing is ErrNotTheFleetsKeys, and so is a sample in which more values
// open with none of its keys than with them. Stored values that open only under its
// later keys are refused too: what it seals, the processes that sealed
// them may not open (an operator who put a new key first before the
// fleet's processes had it), and `rekey keys reseal` is the step that
// moves them. A running process that holds its first key proves nothing
// here: it may be this one (a web process announces its own keys). It
// makes the fingerprint key when Redis holds no sealed value, or when one
// opened under this store's sealing key.
func (s *Store) checkKeysWithoutFingerprintKey(ctx context.Context) error {
	seals := s.sealer.KeyIDs()[0]
	rings, err := s.Keyrings(ctx)
	if err != nil {
		return err
	}
	for _, r := range rings {
		if !slices.Contains(r.KeyIDs, seals) {
			return fmt.Errorf("%w: %s does not hold key %s, which this process seals under", ErrNotTheFleetsKeys, r.Process, seals)
		}
	}
	st, err := s.SealedStatus(ctx, fleetSample)
	if err != nil {
		return err
	}
	switch {
	case st.Values > 0 && st.UnreadableTotal() == st.Values:
		return fmt.Errorf("%w: no stored sealed value opens with its keys (%d tried)", ErrNotTheFleetsKeys, st.Values)
	case st.UnreadableTotal() > readable(st) && readable(st) > 0:
		// A straggler under a retired key is no reason to refuse; more
		// values sealed under keys this store lacks than under its own is.
		return fmt.Errorf("%w: of the stored sealed values tried, %d open with none of its keys and %d with them",
			ErrNotTheFleetsKeys, st.UnreadableTotal(), readable(st))
	case st.Values > 0 && st.ByKey[0] == 0:
		return fmt.Errorf("%w: the stored sealed values open only under its later keys, not under key %s, which this "+
			"process seals under (run 'rekey keys reseal' first if the fleet moves to it)", ErrNotTheFleetsKeys, seals)
	}
	return s.CheckFingerprintKey(ctx)
}

// fingerprintKeys returns the fingerprint key's contents, read again once
// fingerprintKeyRecheck has passed since the last read.
func (s *Store) fingerprintKeys(ctx context.Context) (*fingerprintKeys, error) {
	s.fpMu.Lock()
	defer s.fpMu.Unlock()
	now := time.Now()
	if s.fpKeys != nil && now.Sub(s.fpKeys.readAt) < fingerprintKeyRecheck {
		return s.fpKeys, nil
	}
	k := fingerprintKeyKey()
	v, err := s.rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		v, err = s.createFingerprintKey(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("read the fingerprint key: %w", err)
	}
	if s.fpKeys != nil && s.fpKeys.sealed == v {
		s.fpKeys.readAt = now
		return s.fpKeys, nil
	}
	plain, err := s.sealer.Open(v, k+"#")
	raw := []byte(plain.Reveal())
	if err != nil || len(raw) < fingerprintKeySize || len(raw)%fingerprintKeySize != 0 {
		return nil, ErrFingerprintKey
	}
	keys := &fingerprintKeys{sealed: v, key: raw[:fingerprintKeySize], readAt: now}
	for rest := raw[fingerprintKeySize:]; len(rest) > 0; rest = rest[fingerprintKeySize:] {
		keys.legacy = append(keys.legacy, rest[:fingerprintKeySize])
	}
	s.fpKeys = keys
	return keys, nil
}

// createFingerprintKey stores a new fingerprint key, with the fingerprint
// keys of the encryption keys held now as its legacy keys, unless another
// process stored one first, and returns the one stored.
func (s *Store) createFingerprintKey(ctx context.Context) (string, error) {
	raw := make([]byte, fingerprintKeySize)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	raw = append(raw, bytes.Join(s.sealer.MACKeys(), nil)...)
	k := fingerprintKeyKey()
	sealed, err := s.sealer.SealBinary(secret.New(string(raw)), k+"#")
	if err != nil {
		return "", err
	}
	if err := s.rdb.SetNX(ctx, k, sealed, 0).Err(); err != nil {
		return "", err
	}
	return s.rdb.Get(ctx, k).Result()
}

// livePrefix is the prefix of the fleet's index of live configs: the
// fingerprint (under the fingerprint key) of the config of every
// credential of any instance that may still work, from the mint that saved
// it, or the registration or first read that learned the current one's,
// until its revocation. It lets a mint that answers one instance with the
// config of another instance's live credential be refused before the push
// (ErrConfigLiveElsewhere), which would hand that instance's secret to
// this one's apps. It is 256 SETs, rekey:live:00 to rekey:live:ff, by the
// fingerprint's first byte, each member the integer its next six bytes
// make: a SET of at most 512 integers is kept by Redis as an intset, 8 bytes
// a member, so that 100,000 instances cost about 8 bytes each (131,072
// before a set grows past 512 and costs about 64 bytes a member; Redis's
// set-max-intset-entries raises that). A false match, which fails one
// rotation, comes once in 2^56 comparisons. Credentials saved before the
// index existed enter it at their instance's next rotation.
func livePrefix() string { return keyPrefix + "live:" }

// LiveElsewhere reports whether c, a credential an instance was
// registered with whose config was then another instance's live one
// (FingerprintLiveElsewhere), still shares that live config: the index of
// live configs still holds it, so the other instance's own credential is
// not revoked yet. Revoking c then could revoke that credential too, under
// an issuer that revokes by value or by an id the partner gave both
// instances, and break the other instance's apps. False for every other
// credential. One Redis command, and only for such a credential.
//
// An entry whose instance was deprovisioned with it current (liveGoneKey)
// stays in the index, since rekey does not revoke that credential, but no
// app of that instance holds it any more: it counts as live only if that
// instance was registered again since, and c may be revoked otherwise.
func (s *Store) LiveElsewhere(ctx context.Context, c Credential) (bool, error) {
	set, member, ok := liveAt(c.elsewhere)
	if !ok {
		return false, nil
	}
	pipe := s.rdb.Pipeline()
	held := pipe.SIsMember(ctx, set, member)
	gone := pipe.HGet(ctx, liveGoneKey(), set[len(set)-2:]+":"+member)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("read the index of live configs: %w", err)
	}
	if !held.Val() {
		return false, nil
	}
	owner := gone.Val()
	if owner == "" {
		return true, nil
	}
	v, err := s.rdb.HMGet(ctx, instanceKey(owner), "registered_at", "deprovisioned_at").Result()
	if err != nil {
		return false, fmt.Errorf("read the instance whose config it is: %w", err)
	}
	// Deprovisioned still, or its records expired since: gone. Registered
	// again: its apps may hold the config again.
	registered, _ := v[0].(string)
	deprovisioned, _ := v[1].(string)
	return registered != "" && deprovisioned == "", nil
}

// liveGoneKey is a HASH of the entries of the index of live configs
// (livePrefix) whose instance was deprovisioned with that config current:
// field the entry's set suffix, ":" and member, value the instance's id
// (deprovisionScript). rekey does not revoke such a credential, so its
// entry stays in the index, and Store.LiveElsewhere reads here that no
// app of the instance holds it. About 40 bytes a deprovisioned instance.
//
//	rekey:live_gone
func liveGoneKey() string { return keyPrefix + "live_gone" }

// PruneLiveGoneAfter looks at about limit entries of liveGoneKey after c
// (the reconcile sweep's cursor: HSCAN's, in its Member) and removes those
// whose instance's records have expired, with their entry in the index of
// live configs. Until then Store.LiveElsewhere reads the instance to say
// the config is no live one; after, nothing would ever remove either, and
// both would stay for good, about 50 bytes a deprovisioned instance. An
// instance registered again, or still in its audit retention, keeps its
// entry. It returns how many entries it looked at and removed, the cursor
// to go on from, and whether the hash was walked to its end.
func (s *Store) PruneLiveGoneAfter(ctx context.Context, c Cursor, limit int64) (seen, pruned int, next Cursor, done bool, err error) {
	var at uint64
	if c.Member != "" {
		if at, err = strconv.ParseUint(c.Member, 10, 64); err != nil {
			at = 0 // a cursor no HSCAN gave: start again from the head
		}
	}
	kv, nextAt, err := s.rdb.HScan(ctx, liveGoneKey(), at, "", limit).Result()
	if err != nil {
		return 0, 0, c, false, fmt.Errorf("read the gone entries of the index of live configs: %w", err)
	}
	type entry struct{ field, owner string }
	entries := make([]entry, 0, len(kv)/2)
	pipe := s.rdb.Pipeline()
	exists := make([]*redis.IntCmd, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		entries = append(entries, entry{kv[i], kv[i+1]})
		exists = append(exists, pipe.Exists(ctx, instanceKey(kv[i+1])))
	}
	if len(exists) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, 0, c, false, fmt.Errorf("read the instances of the gone entries: %w", err)
		}
	}
	for i, e := range entries {
		suffix, member, ok := strings.Cut(e.field, ":")
		if exists[i].Val() != 0 || !ok {
			continue
		}
		keys := pruneLiveGoneKeys{liveGone: liveGoneKey(), instance: instanceKey(e.owner), set: livePrefix() + suffix}
		n, err := pruneLiveGoneScript.Run(ctx, s.rdb, keys.list(), e.field, e.owner, member).Int()
		if err != nil {
			return len(entries), pruned, c, false, scriptError("prune the gone entry of "+e.owner, err)
		}
		pruned += n
	}
	if nextAt == 0 {
		return len(entries), pruned, Cursor{}, true, nil
	}
	return len(entries), pruned, Cursor{Member: strconv.FormatUint(nextAt, 10)}, false, nil
}

// pruneLiveGoneScript removes one entry of liveGoneKey, and its entry in
// the index of live configs, while its instance's records are still gone:
// a registration of the instance since keeps both.
//
// KEYS: pruneLiveGoneKeys, one field per key, in order.
// ARGV: the entry's field, its instance's id, its member of the index.
// Returns 1 when it removed the entry, 0 when it kept it.
var pruneLiveGoneScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[3])
return 1
`)

// pruneLiveGoneKeys are the KEYS of pruneLiveGoneScript, one field per key,
// in order.
type pruneLiveGoneKeys struct {
	liveGone string // KEYS[1] -> rekey:live_gone
	instance string // KEYS[2] -> rekey:instance:<id>
	set      string // KEYS[3] -> rekey:live:<nn>
}

func (k pruneLiveGoneKeys) list() []string { return []string{k.liveGone, k.instance, k.set} }

// liveAt is luaLive's live_at in Go: the SET of the index of live configs
// and the member that stand for fingerprint f; ok is false for one too
// short to place.
func liveAt(f string) (set, member string, ok bool) {
	if len(f) < 7 {
		return "", "", false
	}
	var n uint64
	for i := 1; i < 7; i++ {
		n = n<<8 | uint64(f[i])
	}
	return livePrefix() + fmt.Sprintf("%02x", f[0]), strconv.FormatUint(n, 10), true
}

// luaLive is where the scripts find a fingerprint in the index of live
// configs (livePrefix): live_at(prefix, f) returns the SET and the member
// for the fingerprint f, or nil for one too short to place;
// live_any(prefix, all, n) says whether one of the n-byte fingerprints all
// holds one after the other (configFingerprints' all) is in the index.
const luaLive = `
local function live_at(prefix, f)
  if #f < 7 then return nil end
  local n = 0
  for i = 2, 7 do n = n * 256 + string.byte(f, i) end
  return prefix .. string.format('%02x', string.byte(f, 1)), string.format('%.0f', n)
end
local function live_any(prefix, all, n)
  for i = 1, #all, n do
    local set, m = live_at(prefix, string.sub(all, i, i + n - 1))
    if set and redis.call('SISMEMBER', set, m) == 1 then return true end
  end
  return false
end
`

// luaFingerprintIn is the scripts' comparison of a stored fingerprint with
// a config's: fingerprintIn(all, n, f) says whether f is one of the n-byte
// fingerprints all holds one after the other (configFingerprints' all,
// the config's fingerprints under every key).
const luaFingerprintIn = `
local function fingerprintIn(all, n, f)
  for i = 1, #all, n do
    if string.sub(all, i, i + n - 1) == f then return true end
  end
  return false
end
`
