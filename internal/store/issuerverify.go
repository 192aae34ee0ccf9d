package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// issuerVerifiedKey is a STRING: when the deployment's issuer last
// answered a verify request itself, in milliseconds (issuer.VerifyMemory,
// REKEY_ISSUER_VERIFY=auto). One small key for the whole fleet, shared by
// every worker process; each writes it at most once an hour, and it
// expires a ttl (a year) after the last write:
//
//	rekey:issuer_verified -> "<ms>"
func issuerVerifiedKey() string { return keyPrefix + "issuer_verified" }

// IssuerVerifiedAt returns when the issuer last answered verify, as
// RecordIssuerVerified recorded it; the zero time when it never did or
// the record expired. It costs one GET.
func (s *Store) IssuerVerifiedAt(ctx context.Context) (time.Time, error) {
	v, err := s.rdb.Get(ctx, issuerVerifiedKey()).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read when the issuer last verified: %w", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		// Only rekey writes the key: a value it cannot read was set by
		// hand. Reading it as "never" could push a credential the issuer
		// does not know, so the rotation waits for an operator.
		return time.Time{}, fmt.Errorf("read when the issuer last verified: %s holds no time in milliseconds; delete it",
			issuerVerifiedKey())
	}
	return time.UnixMilli(n).UTC(), nil
}

// RecordIssuerVerified records at as the time the issuer last answered
// verify, forgotten ttl from now unless recorded again. It costs one SET.
func (s *Store) RecordIssuerVerified(ctx context.Context, at time.Time, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("record that the issuer verified: ttl %s is not positive", ttl)
	}
	if err := s.rdb.Set(ctx, issuerVerifiedKey(), strconv.FormatInt(ms(at), 10), ttl).Err(); err != nil {
		return fmt.Errorf("record that the issuer verified: %w", err)
	}
	return nil
}
