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
// on a clean stop. Times are Redis's own (TIME), so no process's clock,
// nor the operator's, decides whether an announcement has lapsed; a
// lapsed one (a process that died) is dropped by the next announcement of
// any process (a read writes nothing). `rekey keys reseal` reads it to refuse resealing while a
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
	// Until is when the announcement lapses unless renewed, by Redis's clock.
	Until time.Time
}

// Seals returns the id of the key the process seals under.
func (k Keyring) Seals() string {
	if len(k.KeyIDs) == 0 {
		return ""
	}
	return k.KeyIDs[0]
}

// keyringKeys are the keys of announceKeyringScript and readKeyringsScript.
type keyringKeys struct {
	keyrings string // KEYS[1] -> keyringsKey
}

func (k keyringKeys) list() []string { return []string{k.keyrings} }

// luaRedisNow is Redis's clock in ms, for the keyring scripts.
const luaRedisNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// announceKeyringScript records one process's keys until ttl from now, by
// Redis's clock, and drops the announcements that have lapsed.
//
// ARGV: process, ttl ms, key ids joined by commas.
// Returns how many lapsed announcements were dropped.
var announceKeyringScript = redis.NewScript(luaRedisNow + `
local all = redis.call('HGETALL', KEYS[1])
local dropped = 0
for i = 1, #all, 2 do
  local until_ms = tonumber(string.match(all[i + 1], '^(%d+)|')) or 0
  if all[i] ~= ARGV[1] and until_ms <= now then
    dropped = dropped + redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[2])) .. '|' .. ARGV[3])
return dropped
`)

// readKeyringsScript returns Redis's clock in ms and every announcement,
// as a flat list of fields and values; it writes nothing.
var readKeyringsScript = redis.NewScript(luaRedisNow + `
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, tostring(now))
return out
`)

// AnnounceKeyring records that process holds this store's keys until ttl
// from now (by Redis's clock).
func (s *Store) AnnounceKeyring(ctx context.Context, process string, ttl time.Duration) error {
	if err := s.announce(ctx, keyringsKey(), process, ttl, strings.Join(s.sealer.KeyIDs(), ",")); err != nil {
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

// Keyrings returns the announcements that have not lapsed by Redis's
// clock, by process name. It only reads.
func (s *Store) Keyrings(ctx context.Context) ([]Keyring, error) {
	live, err := s.announcements(ctx, keyringsKey())
	if err != nil {
		return nil, fmt.Errorf("read keyrings: %w", err)
	}
	var out []Keyring
	for _, a := range live {
		if a.value != "" {
			out = append(out, Keyring{Process: a.process, KeyIDs: strings.Split(a.value, ","), Until: a.until})
		}
	}
	return out, nil
}

// announcement is one process's live entry in a hash of announcements
// (keyringsKey, sharedSettingsKey).
type announcement struct {
	process, value string
	until          time.Time
}

// announce records value as process's announcement in key until ttl from
// now, by Redis's clock, and drops the lapsed ones.
func (s *Store) announce(ctx context.Context, key, process string, ttl time.Duration, value string) error {
	return announceKeyringScript.Run(ctx, s.rdb, keyringKeys{keyrings: key}.list(), process, ttl.Milliseconds(), value).Err()
}

// announcements returns key's announcements that have not lapsed by
// Redis's clock, by process name. It only reads.
func (s *Store) announcements(ctx context.Context, key string) ([]announcement, error) {
	flat, err := readKeyringsScript.Run(ctx, s.rdb, keyringKeys{keyrings: key}.list()).StringSlice()
	if err != nil || len(flat) == 0 {
		return nil, err
	}
	now, _ := strconv.ParseInt(flat[0], 10, 64)
	var live []announcement
	for i := 1; i+1 < len(flat); i += 2 {
		until, value, ok := strings.Cut(flat[i+1], "|")
		ms, err := strconv.ParseInt(until, 10, 64)
		if !ok || err != nil || ms <= now {
			continue
		}
		live = append(live, announcement{process: flat[i], value: value, until: time.UnixMilli(ms)})
	}
	slices.SortFunc(live, func(a, b announcement) int { return strings.Compare(a.process, b.process) })
	return live, nil
}

// KeyIDs returns the ids of this store's keys (REKEY_ENCRYPTION_KEYS) in
// configuration order; the first seals.
func (s *Store) KeyIDs() []string { return s.sealer.KeyIDs() }
