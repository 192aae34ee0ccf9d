package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// countersKey is a HASH of fleet-wide counters that every process adds to
// (rotations by outcome, Heroku calls by status, time waited for budget),
// so the web process can export them although worker dynos serve no port.
func countersKey() string { return keyPrefix + "counters" }

// addCountersKeys are the KEYS of addCountersScript.
type addCountersKeys struct {
	counters string // KEYS[1] countersKey
}

func (k addCountersKeys) list() []string { return []string{k.counters} }

// addCountersScript adds deltas to counters, all or nothing, so that a
// failed flush is retried whole.
//
// ARGV: name, delta, name, delta, ...
// Returns the number of counters added to.
var addCountersScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
`)

// AddCounters adds each delta to its counter in one script. Names are
// colon-separated labels, such as "rotations:bulk:rotated". Processes call
// it from a metrics.Recorder every few seconds, never per event.
func (s *Store) AddCounters(ctx context.Context, deltas map[string]int64) error {
	args := make([]any, 0, 2*len(deltas))
	for name, d := range deltas {
		if d != 0 {
			args = append(args, name, d)
		}
	}
	if len(args) == 0 {
		return nil
	}
	keys := addCountersKeys{counters: countersKey()}
	if err := addCountersScript.Run(ctx, s.rdb, keys.list(), args...).Err(); err != nil {
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
