package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// healthKey is a STRING the health checks (/healthz, /metrics) write,
// expiring a minute after the last: a Redis that answers PING but refuses
// writes (full under noeviction, a read-only replica, too few replicas for
// min-replicas-to-write) can neither rotate nor revoke.
func healthKey() string { return keyPrefix + "health" }

// healthTTL is how long the health key outlives the last check.
const healthTTL = time.Minute

// ErrRedisRefusesWrites says Redis answered a write with an error: rekey can
// read but cannot rotate, revoke or record anything.
var ErrRedisRefusesWrites = errors.New("Redis refuses writes")

// CheckWritable writes the health key. It returns nil when Redis took the
// write, an error wrapping ErrRedisRefusesWrites when Redis answered it with
// an error (such as OOM, READONLY or NOREPLICAS), and the connection's error
// when Redis did not answer.
func (s *Store) CheckWritable(ctx context.Context) error {
	err := s.rdb.Set(ctx, healthKey(), ms(s.now()), healthTTL).Err()
	var answered redis.Error
	if errors.As(err, &answered) {
		return fmt.Errorf("%w: %w", ErrRedisRefusesWrites, err)
	}
	return err
}
