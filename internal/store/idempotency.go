package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// idempotencyKey is a STRING: what became of a POST /api/v1/rotations sent
// with an Idempotency-Key header, named by the SHA-256 of the key (never
// the key as sent). It holds "p:" and the request's digest while the
// request is handled, then "d:", the digest, the status and the answer's
// body, separated by ":".
func idempotencyKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return keyPrefix + "idempotency:" + hex.EncodeToString(sum[:])
}

// IdempotentAnswer is what an earlier request sent with the same
// Idempotency-Key became.
type IdempotentAnswer struct {
	// Request is the earlier request's digest: a request sent again with
	// the key is the same one only if its digest is this one.
	Request string
	// Pending is true while the earlier request is being handled: it has
	// no answer yet.
	Pending bool
	// Status and Body are the earlier request's answer.
	Status int
	Body   []byte
}

// BeginIdempotent marks the request whose digest is request as handled
// under key for at most pendingFor, and returns nil; or, when key already
// marks a request (handled or being handled), returns what became of it
// and marks nothing.
func (s *Store) BeginIdempotent(ctx context.Context, key, request string, pendingFor time.Duration) (*IdempotentAnswer, error) {
	k := idempotencyKey(key)
	// A mark that expires between the SET and the GET is gone: the loop
	// takes the key then.
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, k, "p:"+request, pendingFor).Result()
		if err != nil {
			return nil, fmt.Errorf("mark the request's idempotency key: %w", err)
		}
		if ok {
			return nil, nil
		}
		v, err := s.rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the request's idempotency key: %w", err)
		}
		return parseIdempotent(v)
	}
	return nil, errors.New("the request's idempotency key changed three times while it was read")
}

// RenewIdempotent marks the request whose digest is request as handled
// under key for pendingFor again, from now, while its process handles it:
// the mark's time bounds how long a request cut off (its process stopped)
// holds the key, not how long a live one may take. A key that no longer
// marks that request as being handled is left as it is.
func (s *Store) RenewIdempotent(ctx context.Context, key, request string, pendingFor time.Duration) error {
	if err := s.whilePending(ctx, key, request, func(p redis.Pipeliner, k string) {
		p.PExpire(ctx, k, pendingFor)
	}); err != nil {
		return fmt.Errorf("renew the request's idempotency key: %w", err)
	}
	return nil
}

// parseIdempotent reads an idempotencyKey's value.
func parseIdempotent(v string) (*IdempotentAnswer, error) {
	if req, ok := strings.CutPrefix(v, "p:"); ok {
		return &IdempotentAnswer{Request: req, Pending: true}, nil
	}
	parts := strings.SplitN(strings.TrimPrefix(v, "d:"), ":", 3)
	if !strings.HasPrefix(v, "d:") || len(parts) != 3 {
		return nil, errors.New("the request's idempotency key holds no answer rekey wrote")
	}
	status, err := strconv.Atoi(parts[1])
	if err != nil {
		return nil, errors.New("the request's idempotency key holds no answer rekey wrote")
	}
	return &IdempotentAnswer{Request: parts[0], Status: status, Body: []byte(parts[2])}, nil
}

// FinishIdempotent keeps the answer of the request whose digest is request
// under key for keepFor: the same request sent again with the key within
// that time is answered with it.
func (s *Store) FinishIdempotent(ctx context.Context, key, request string, status int, body []byte, keepFor time.Duration) error {
	v := "d:" + request + ":" + strconv.Itoa(status) + ":" + string(body)
	if err := s.rdb.Set(ctx, idempotencyKey(key), v, keepFor).Err(); err != nil {
		return fmt.Errorf("keep the request's answer under its idempotency key: %w", err)
	}
	return nil
}

// DropIdempotent frees key of the request whose digest is request, which
// ended without an answer worth keeping (refused, or failed part-way): the
// same request sent again with it is handled anew. A key that no longer
// marks that request as being handled (its mark expired, and another
// request took the key) is left as it is.
func (s *Store) DropIdempotent(ctx context.Context, key, request string) error {
	if err := s.whilePending(ctx, key, request, func(p redis.Pipeliner, k string) { p.Del(ctx, k) }); err != nil {
		return fmt.Errorf("free the request's idempotency key: %w", err)
	}
	return nil
}

// whilePending runs change on key's idempotencyKey in one transaction,
// only while it marks the request whose digest is request as being
// handled (optimistic: WATCH, then the check, then MULTI).
func (s *Store) whilePending(ctx context.Context, key, request string, change func(p redis.Pipeliner, k string)) error {
	k := idempotencyKey(key)
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) || err == nil && v != "p:"+request {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			change(p, k)
			return nil
		})
		return err
	}, k)
	if errors.Is(err, redis.TxFailedErr) {
		return nil
	}
	return err
}
