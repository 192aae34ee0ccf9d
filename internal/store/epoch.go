package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// epochKey is a STRING: a mark the first rekey process to find none writes
// there, for good. A process that read one mark and later reads another,
// or writes the mark anew, talks to a Redis that no longer holds rekey's
// data: restarted without persistence, flushed, or another Redis.
func epochKey() string { return keyPrefix + "epoch" }

// Epoch returns the mark Redis holds in rekey:epoch, writing mark there
// first when it holds none.
func (s *Store) Epoch(ctx context.Context, mark string) (string, error) {
	var get *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, epochKey(), mark, 0)
		get = p.Get(ctx, epochKey())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read redis's epoch: %w", err)
	}
	return get.Val(), nil
}
