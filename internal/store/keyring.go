package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyringsKey is a HASH in which each running web, worker and clock process
// says which keys of REKEY_ENCRYPTION_KEYS it holds: field, the process's
// name; value, "until ms|id,id,..." (the key ids in configuration order,
// the first one sealing). A process announces itself at start and again
// every minute, each announcement good for a few minutes, and withdraws
// on a clean stop; one that died is dropped when its announcement is read
// past its time. `rekey keys reseal` reads it to refuse resealing while a
// running process still seals under another key, or cannot open the new
// one.
func keyringsKey() string { return keyPrefix + "keyrings" }

// Keyring is one running process's announcement.
type Keyring struct {
	// Process names the process: its dyno ("worker.1") or host and pid.
	Process string
	// KeyIDs are the ids of its keys in configuration order; the first
	// seals what the process writes.
	KeyIDs []string
	// Until is when the announcement lapses unless renewed.
	Until time.Time
}

// Seals returns the id of the key the process seals under.
func (k Keyring) Seals() string { return k.KeyIDs[0] }

// AnnounceKeyring records that process holds this store's keys until ttl
// from now.
func (s *Store) AnnounceKeyring(ctx context.Context, process string, ttl time.Duration) error {
	v := strconv.FormatInt(s.now().Add(ttl).UnixMilli(), 10) + "|" + strings.Join(s.sealer.KeyIDs(), ",")
	if err := s.rdb.HSet(ctx, keyringsKey(), process, v).Err(); err != nil {
		return fmt.Errorf("announce keys: %w", err)
	}
	return nil
}

// WithdrawKeyring removes process's announcement, on a clean stop.
func (s *Store) WithdrawKeyring(ctx context.Context, process string) error {
	if err := s.rdb.HDel(ctx, keyringsKey(), process).Err(); err != nil {
		return fmt.Errorf("withdraw keys: %w", err)
	}
	return nil
}

// Keyrings returns the announcements still good, by process name, and
// deletes those past their time (a process that died without withdrawing)
// and any that cannot be read.
func (s *Store) Keyrings(ctx context.Context) ([]Keyring, error) {
	all, err := s.rdb.HGetAll(ctx, keyringsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("read keyrings: %w", err)
	}
	now := s.now()
	var live []Keyring
	var lapsed []any
	for process, v := range all {
		until, ids, ok := strings.Cut(v, "|")
		ms, err := strconv.ParseInt(until, 10, 64)
		if !ok || err != nil || ids == "" || !time.UnixMilli(ms).After(now) {
			lapsed = append(lapsed, process, v)
			continue
		}
		live = append(live, Keyring{Process: process, KeyIDs: strings.Split(ids, ","), Until: time.UnixMilli(ms)})
	}
	if len(lapsed) > 0 {
		k := dropLapsedKeys{keyrings: keyringsKey()}
		if err := dropLapsedScript.Run(ctx, s.rdb, k.list(), lapsed...).Err(); err != nil {
			return nil, fmt.Errorf("drop lapsed keyrings: %w", err)
		}
	}
	slices.SortFunc(live, func(a, b Keyring) int { return strings.Compare(a.Process, b.Process) })
	return live, nil
}

// dropLapsedKeys are the keys of dropLapsedScript.
type dropLapsedKeys struct {
	keyrings string // KEYS[1] -> keyringsKey
}

func (k dropLapsedKeys) list() []string { return []string{k.keyrings} }

// dropLapsedScript deletes announcements read past their time, each only
// if it still holds what was read: a process that renewed its own
// meanwhile keeps it.
//
// ARGV: process, value read, process, value read, ...
// Returns how many were deleted.
var dropLapsedScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then n = n + redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return n
`)

// KeyIDs returns the ids of this store's keys (REKEY_ENCRYPTION_KEYS) in
// configuration order; the first seals.
func (s *Store) KeyIDs() []string { return s.sealer.KeyIDs() }
