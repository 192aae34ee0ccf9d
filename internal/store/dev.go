package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// devKey is the hash by which `rekey dev` knows a database as its own:
//
//	rekey:dev -> claimed_at: RFC 3339, instance:<id>: "1" per instance it registered
//
// It is written only by `rekey dev` (internal/devstack), never by the
// Procfile's processes.
func devKey() string { return keyPrefix + "dev" }

// devInstanceField is the field of devKey that lists one instance.
const devInstanceField = "instance:"

// DevMark is what devKey says about a database.
type DevMark struct {
	// Claimed is true once a `rekey dev` has claimed the database.
	Claimed bool
	// Instances are the ids of the instances `rekey dev` registered.
	Instances map[string]bool
}

// MarkDev claims the database for `rekey dev` and records ids as
// instances it registers. It is idempotent.
func (s *Store) MarkDev(ctx context.Context, ids ...string) error {
	fields := []any{"claimed_at", s.now().UTC().Format(time.RFC3339)}
	for _, id := range ids {
		fields = append(fields, devInstanceField+id, "1")
	}
	if err := s.rdb.HSetNX(ctx, devKey(), "claimed_at", fields[1]).Err(); err != nil {
		return fmt.Errorf("mark database as rekey dev's: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := s.rdb.HSet(ctx, devKey(), fields[2:]...).Err(); err != nil {
		return fmt.Errorf("mark instances as rekey dev's: %w", err)
	}
	return nil
}

// DevMark reads the mark MarkDev writes.
func (s *Store) DevMark(ctx context.Context) (DevMark, error) {
	h, err := s.rdb.HGetAll(ctx, devKey()).Result()
	if err != nil {
		return DevMark{}, fmt.Errorf("read rekey dev's mark: %w", err)
	}
	m := DevMark{Claimed: h["claimed_at"] != "", Instances: map[string]bool{}}
	for f := range h {
		if id, ok := strings.CutPrefix(f, devInstanceField); ok {
			m.Instances[id] = true
		}
	}
	return m, nil
}

// IsKey reports whether key is one of rekey's own keys (under its prefix).
func IsKey(key string) bool { return strings.HasPrefix(key, keyPrefix) }

// devRunKey names the `rekey dev` running on the database now:
//
//	rekey:dev:run -> "<host> pid <pid>", PX = the lease left
//
// A run takes it before it reads the database and renews it while it
// runs, so that a second run started at the same moment, before the
// first's workers announce themselves to asynq, finds it.
func devRunKey() string { return keyPrefix + "dev:run" }

// devRunKeys are the KEYS of the dev run's scripts.
type devRunKeys struct {
	run string // KEYS[1] -> rekey:dev:run
}

func (k devRunKeys) list() []string { return []string{k.run} }

// DevRunKey is devRunKey, which `rekey dev` leaves out of what it finds in
// the database: it is the run's own.
func DevRunKey() string { return devRunKey() }

// ClaimDevRun records owner as the `rekey dev` running on the database for
// ttl, and returns "", unless another run holds it: then it changes
// nothing and returns that run's owner.
func (s *Store) ClaimDevRun(ctx context.Context, owner string, ttl time.Duration) (string, error) {
	held, err := claimDevRunScript.Run(ctx, s.rdb, devRunKeys{run: devRunKey()}.list(), owner, ttl.Milliseconds()).Text()
	if err != nil {
		return "", fmt.Errorf("claim the database for this rekey dev run: %w", err)
	}
	return held, nil
}

// claimDevRunScript takes the lease unless another run holds it,
// renewDevRunScript extends owner's (or takes it again once lapsed or
// cleared), and releaseDevRunScript ends owner's. KEYS: devRunKeys.
var (
	claimDevRunScript = redis.NewScript(`local held = redis.call("GET", KEYS[1])
if held then return held end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return ""`)
	renewDevRunScript = redis.NewScript(`local held = redis.call("GET", KEYS[1])
if held == ARGV[1] then redis.call("PEXPIRE", KEYS[1], ARGV[2]) return "" end
if held then return held end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return ""`)
	releaseDevRunScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1]) end
return 0`)
)

// RenewDevRun extends owner's lease on the database to ttl, taking it again
// when it lapsed or was cleared (ClaimDevRun), and returns "", unless
// another run took it once it lapsed: then it returns that run's owner.
func (s *Store) RenewDevRun(ctx context.Context, owner string, ttl time.Duration) (string, error) {
	return renewDevRunScript.Run(ctx, s.rdb, devRunKeys{run: devRunKey()}.list(), owner, ttl.Milliseconds()).Text()
}

// ReleaseDevRun ends owner's lease on the database, if it still holds it.
func (s *Store) ReleaseDevRun(ctx context.Context, owner string) error {
	return releaseDevRunScript.Run(ctx, s.rdb, devRunKeys{run: devRunKey()}.list(), owner).Err()
}
