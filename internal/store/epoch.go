package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// epochKey is a STRING: a mark the first rekey process to find none writes
// there, for good. A process that read one mark and later reads another,
// or writes the mark anew, talks to a Redis that no longer holds rekey's
// data: restarted without persistence, flushed, or another Redis.
func epochKey() string { return keyPrefix + "epoch" }

// NewEpochMark is a mark for Epoch to write: the time t, when rekey's data
// began in this Redis, and random bytes that tell two marks of one second
// apart.
func NewEpochMark(t time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format(time.RFC3339) + "/" + hex.EncodeToString(b[:])
}

// EpochSince returns the time a mark says rekey's data began, and false
// when it holds none: the mark is read from Redis, where anything may have
// written it, so nothing else of it is ever shown.
func EpochSince(mark string) (time.Time, bool) {
	at, _, _ := strings.Cut(mark, "/")
	t, err := time.Parse(time.RFC3339, at)
	return t.UTC(), err == nil
}

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

// EpochStarted returns when rekey's data began in this Redis, by the mark
// in rekey:epoch, writing nothing; false when Redis holds no mark, or one
// without a time.
func (s *Store) EpochStarted(ctx context.Context) (time.Time, bool, error) {
	mark, err := s.rdb.Get(ctx, epochKey()).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read redis's epoch: %w", err)
	}
	t, ok := EpochSince(mark)
	return t, ok, nil
}
