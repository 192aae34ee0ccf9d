package bench

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// info returns the fields of one INFO section.
func info(ctx context.Context, rdb redis.UniversalClient, section string) (map[string]string, error) {
	raw, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO %s: %w", section, err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out, nil
}

// Commands is the number of commands the whole server has run, summed
// over INFO commandstats.
func Commands(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	counts, err := CommandCounts(ctx, rdb)
	var total int64
	for _, n := range counts {
		total += n
	}
	return total, err
}

// CommandCounts is how often the whole server has run each command, from
// INFO commandstats. Commands that Lua scripts call count as well as the
// EVALSHA that ran them.
func CommandCounts(ctx context.Context, rdb redis.UniversalClient) (map[string]int64, error) {
	stats, err := info(ctx, rdb, "commandstats")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(stats))
	for k, v := range stats {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		// v reads "calls=12,usec=34,usec_per_call=2.83,...".
		calls, _, _ := strings.Cut(v, ",")
		n, err := strconv.ParseInt(strings.TrimPrefix(calls, "calls="), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis INFO commandstats %s: %q", k, v)
		}
		out[name] = n
	}
	return out, nil
}

// UsedMemory is INFO memory's used_memory, in bytes.
func UsedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	m, err := info(ctx, rdb, "memory")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(m["used_memory"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: used_memory %q", m["used_memory"])
	}
	return n, nil
}

// ServerVersion is the server's redis_version.
func ServerVersion(ctx context.Context, rdb redis.UniversalClient) string {
	m, err := info(ctx, rdb, "server")
	if err != nil {
		return "unknown"
	}
	return m["redis_version"]
}

// KeyBytes is the mean MEMORY USAGE of up to limit keys matching pattern,
// and how many keys it looked at.
func KeyBytes(ctx context.Context, rdb redis.UniversalClient, pattern string, limit int) (float64, int, error) {
	var keys []string
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) && len(keys) < limit {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, 0, err
	}
	if len(keys) == 0 {
		return 0, 0, nil
	}
	pipe := rdb.Pipeline()
	sizes := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		sizes[i] = pipe.MemoryUsage(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, fmt.Errorf("redis MEMORY USAGE: %w", err)
	}
	var total int64
	for _, s := range sizes {
		total += s.Val()
	}
	return float64(total) / float64(len(keys)), len(keys), nil
}
