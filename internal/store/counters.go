package store

import (
	"context"
	"fmt"
	"strconv"
)

// countersKey is a HASH of fleet-wide counters that every process adds to
// (rotations by outcome, Heroku calls by status, time waited for budget),
// so the web process can export them although worker dynos serve no port.
func countersKey() string { return keyPrefix + "counters" }

// AddCounters adds each delta to its counter in one round trip. Names are
// colon-separated labels, such as "rotations:bulk:rotated".
func (s *Store) AddCounters(ctx context.Context, deltas map[string]int64) error {
	if len(deltas) == 0 {
		return nil
	}
	pipe := s.rdb.TxPipeline() // all or nothing: a failed flush is retried whole
	for name, d := range deltas {
		if d != 0 {
			pipe.HIncrBy(ctx, countersKey(), name, d)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("add counters: %w", err)
	}
	return nil
}

// Counters returns every counter.
func (s *Store) Counters(ctx context.Context) (map[string]int64, error) {
	m, err := s.rdb.HGetAll(ctx, countersKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k], _ = strconv.ParseInt(v, 10, 64)
	}
	return out, nil
}

// InFlightCount returns how many rotations are in flight, fleet-wide.
func (s *Store) InFlightCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, inflightKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("count rotations in flight: %w", err)
	}
	return n, nil
}
