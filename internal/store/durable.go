package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DurableTimeout is how long Durable waits for the replicas to acknowledge:
// a replica that keeps up answers within milliseconds, and the wait stays
// well inside go-redis's default read timeout (3 s), which a pipeline
// applies to WAIT too (a shorter one shortens the wait: waitTimeout).
const DurableTimeout = time.Second

// ErrNotDurable means fewer replicas than WithDurability asks acknowledged
// rekey's writes within DurableTimeout: a failover now could lose them, so
// the step that cannot be undone (a mint, a push, a revocation) is not taken
// and the task is retried.
var ErrNotDurable = errors.New("redis replicas did not acknowledge rekey's writes")

// durableKey is a counter Durable increments: a write of its own, placed in
// Redis's replication stream after every write acknowledged before it.
func durableKey() string { return keyPrefix + "durable" }

// WithDurability makes Durable wait until replicas of Redis's replicas hold
// every write acknowledged before it (REKEY_REDIS_WAIT_REPLICAS). Zero, the
// default, makes Durable return at once.
func WithDurability(replicas int) Option {
	return func(s *Store) { s.waitReplicas = max(replicas, 0) }
}

// Durable returns nil once every write Redis acknowledged before the call,
// from any process, has reached the replicas WithDurability asks for, and
// ErrNotDurable when they do not acknowledge within DurableTimeout. A
// worker calls it before each step it cannot take back (docs/design.md,
// "Redis losing writes"): Redis replicates asynchronously, and a failover
// to a replica that missed the last writes would otherwise bring back a
// rotation from before its push, or a credential from before its discard.
//
// WAIT counts what the calling connection wrote; one write of Durable's
// own, on that connection, comes after every write acknowledged before it
// in the one replication stream, so waiting for it waits for them all.
func (s *Store) Durable(ctx context.Context) error {
	if s.waitReplicas == 0 {
		return nil
	}
	timeout := s.waitTimeout()
	var wait *redis.Cmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, durableKey())
		wait = p.Do(ctx, "wait", s.waitReplicas, timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for redis replicas: %w", err)
	}
	if n, _ := wait.Int64(); n < int64(s.waitReplicas) {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotDurable, n, s.waitReplicas, timeout)
	}
	return nil
}

// waitTimeout is how long WAIT may block: DurableTimeout, or half the
// client's read timeout when that is shorter (a REDIS_URL's
// ?read_timeout=): a pipeline reads WAIT's answer under the read timeout,
// and one cut off is an i/o timeout, its connection dropped and the
// pipeline sent again, never ErrNotDurable.
func (s *Store) waitTimeout() time.Duration {
	d := DurableTimeout
	if c, ok := s.rdb.(interface{ Options() *redis.Options }); ok {
		if rt := c.Options().ReadTimeout; rt > 0 && rt/2 < d {
			d = rt / 2
		}
	}
	return max(d, time.Millisecond)
}
