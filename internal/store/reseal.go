package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/seal"
)

// Every sealed value rekey stores is a field of a HASH under keyPrefix,
// sealed with the associated data "<redis key>#<field>" (sealField,
// sealConfig), or a whole STRING under keyPrefix, sealed with "<redis
// key>#": OAuth tokens (oauthKey; earlier versions kept them in instance
// hashes), a pending credential's config, a log_input_url. The walk below
// finds them by their form (seal.KeyID) rather than by a list of keys or
// fields, so a sealed value added later is covered without a change here.

// scanPage is how many keys one SCAN call asks Redis to look at.
const scanPage = 500

// resealAttempts is how many times Reseal reads a value again when a
// running rotation rewrote it between the read and the compare-and-set.
const resealAttempts = 3

// sealedValue is one sealed value at rest: a hash's field, or a whole
// string key when field is "".
type sealedValue struct {
	key, field, value string
}

// whole says whether the value is a whole string key.
func (v sealedValue) whole() bool { return v.field == "" }

// aad is the associated data the value was sealed with.
func (v sealedValue) aad() string { return v.key + "#" + v.field }

// SealedStatus counts the sealed values rekey stores by the key that opens
// them. It holds key ids, never keys.
type SealedStatus struct {
	// KeyIDs are the configured keys' ids (seal.Sealer.KeyIDs), in the
	// order of REKEY_ENCRYPTION_KEYS; the first seals.
	KeyIDs []string `json:"key_ids"`
	// ByKey counts the values each configured key opens, by position in KeyIDs.
	ByKey []int64 `json:"by_key"`
	// Unreadable counts the values no configured key opens, by the key id
	// they name: a dropped key, or a configured one when the value was
	// altered or moved.
	Unreadable map[string]int64 `json:"unreadable"`
	// Keys counts the Redis hashes and strings examined; Values the sealed
	// values found.
	Keys   int64 `json:"keys_examined"`
	Values int64 `json:"values"`
	// Partial is true when the count stopped at its limit before the end.
	Partial bool `json:"partial"`
}

// UnreadableTotal is how many values no configured key opens.
func (st SealedStatus) UnreadableTotal() int64 {
	var n int64
	for _, c := range st.Unreadable {
		n += c
	}
	return n
}

// SealedStatus counts every sealed value (maxValues 0), or stops after
// about maxValues of them (a bounded start-up check; Partial then says so).
// It only reads.
func (s *Store) SealedStatus(ctx context.Context, maxValues int64) (SealedStatus, error) {
	ids := s.sealer.KeyIDs()
	st := SealedStatus{KeyIDs: ids, ByKey: make([]int64, len(ids)), Unreadable: map[string]int64{}}
	complete, err := s.walkSealed(ctx, func(keys int64, page []sealedValue) bool {
		st.Keys += keys
		for _, v := range page {
			st.count(s.sealer, v)
		}
		return maxValues == 0 || st.Values < maxValues
	})
	st.Partial = !complete
	return st, err
}

func (st *SealedStatus) count(sealer *seal.Sealer, v sealedValue) {
	st.Values++
	id, _ := seal.KeyID(v.value)
	if _, err := sealer.Open(v.value, v.aad()); err != nil {
		st.Unreadable[id]++
		return
	}
	st.ByKey[sealer.KeyIndex(id)]++
}

// ResealResult counts what Reseal did.
type ResealResult struct {
	// Keys counts the Redis hashes and strings examined; Values the sealed
	// values found.
	Keys   int64 `json:"keys_examined"`
	Values int64 `json:"values"`
	// Resealed values moved to the first key.
	Resealed int64 `json:"resealed"`
	// Current values were already sealed under the first key.
	Current int64 `json:"already_current"`
	// Unreadable values no configured key opens; they are left as they are.
	Unreadable int64 `json:"unreadable"`
	// Gone values were removed by a running rotation before they could be
	// resealed (a pending credential's config is dropped on promotion).
	Gone int64 `json:"gone"`
	// Busy values kept changing under running rotations; run Reseal again.
	Busy int64 `json:"busy"`
}

// Reseal seals every stored sealed value again under the first key, calling
// progress after each page of keys. It is idempotent, and safe while
// workers run: each value is replaced only if its field still holds what
// was read (compare-and-set), so a value a rotation rewrote meanwhile is
// never overwritten with stale data; it is read again instead.
func (s *Store) Reseal(ctx context.Context, progress func(ResealResult)) (ResealResult, error) {
	var res ResealResult
	var failed error
	_, err := s.walkSealed(ctx, func(keys int64, page []sealedValue) bool {
		res.Keys += keys
		for _, v := range page {
			res.Values++
			if failed = s.resealOne(ctx, v, &res); failed != nil {
				return false
			}
		}
		if progress != nil {
			progress(res)
		}
		return true
	})
	if failed != nil {
		return res, failed
	}
	return res, err
}

// resealOne reseals one value, reading it again when it changed meanwhile.
func (s *Store) resealOne(ctx context.Context, v sealedValue, res *ResealResult) error {
	for range resealAttempts {
		out, changed, err := s.sealer.Reseal(v.value, v.aad())
		switch {
		case errors.Is(err, seal.ErrOpen):
			res.Unreadable++
			return nil
		case err != nil:
			return fmt.Errorf("reseal %s: %w", v.key, err)
		case !changed:
			res.Current++
			return nil
		}
		swapped, err := swapField(ctx, s.rdb, v, out)
		if err != nil {
			return err
		}
		if swapped {
			res.Resealed++
			return nil
		}
		if v.value, err = s.readSealed(ctx, v); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("reseal %s: %w", v.key, err)
		}
		if _, sealed := seal.KeyID(v.value); !sealed { // removed, or emptied
			res.Gone++
			return nil
		}
	}
	res.Busy++
	return nil
}

// readSealed reads v's value again.
func (s *Store) readSealed(ctx context.Context, v sealedValue) (string, error) {
	if v.whole() {
		return s.rdb.Get(ctx, v.key).Result()
	}
	return s.rdb.HGet(ctx, v.key, v.field).Result()
}

// swapKeys are the keys of swapFieldScript.
type swapKeys struct {
	hash string // KEYS[1] -> the hash or string holding the value (a credential hash, rekey:oauth:<id>, ...)
}

func (k swapKeys) list() []string { return []string{k.hash} }

// swapFieldScript replaces a field's value (a string's, when the field is
// "") only if it still holds the value read before (compare-and-set), so a
// reseal never overwrites what a concurrent rotation wrote. A string keeps
// its expiry.
//
// ARGV[1] field, ARGV[2] value read, ARGV[3] new value.
// Returns 1 when replaced, 0 when the field holds something else or is gone.
var swapFieldScript = redis.NewScript(`
if ARGV[1] == '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
  return 1
end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`)

func swapField(ctx context.Context, rdb redis.UniversalClient, v sealedValue, out string) (bool, error) {
	k := swapKeys{hash: v.key}
	n, err := swapFieldScript.Run(ctx, rdb, k.list(), v.field, v.value, out).Int()
	if err != nil {
		return false, fmt.Errorf("reseal %s: %w", v.key, err)
	}
	return n == 1, nil
}

// walkSealed scans every hash, then every string, under keyPrefix and
// calls fn with each page's sealed values and how many keys the page held,
// until the scans end or fn returns false. complete says whether the scans
// reached their end. A key created during a scan may be missed; it is
// sealed under the first key anyway.
func (s *Store) walkSealed(ctx context.Context, fn func(keys int64, page []sealedValue) bool) (complete bool, err error) {
	for _, typ := range []string{"hash", "string"} {
		if complete, err = s.walkSealedOf(ctx, typ, fn); !complete || err != nil {
			return complete, err
		}
	}
	return true, nil
}

// walkSealedOf is walkSealed over the keys of one type.
func (s *Store) walkSealedOf(ctx context.Context, typ string, fn func(keys int64, page []sealedValue) bool) (bool, error) {
	var cursor uint64
	for {
		keys, next, err := s.rdb.ScanType(ctx, cursor, keyPrefix+"*", scanPage, typ).Result()
		if err != nil {
			return false, fmt.Errorf("scan sealed values: %w", err)
		}
		read := s.sealedIn
		if typ == "string" {
			read = s.sealedStrings
		}
		page, err := read(ctx, keys)
		if err != nil {
			return false, err
		}
		more := fn(int64(len(keys)), page)
		if next == 0 {
			return true, nil
		}
		if !more {
			return false, nil
		}
		cursor = next
	}
}

// sealedIn reads the hashes in one pipeline and returns their sealed fields.
func (s *Store) sealedIn(ctx context.Context, keys []string) ([]sealedValue, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sealed values: %w", err)
	}
	var out []sealedValue
	for i, c := range cmds {
		for field, v := range c.Val() {
			if _, ok := seal.KeyID(v); ok {
				out = append(out, sealedValue{key: keys[i], field: field, value: v})
			}
		}
	}
	return out, nil
}

// sealedStrings reads the strings in one pipeline and returns the sealed ones.
func (s *Store) sealedStrings(ctx context.Context, keys []string) ([]sealedValue, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read sealed values: %w", err)
	}
	var out []sealedValue
	for i, c := range cmds {
		if _, ok := seal.KeyID(c.Val()); ok {
			out = append(out, sealedValue{key: keys[i], value: c.Val()})
		}
	}
	return out, nil
}
