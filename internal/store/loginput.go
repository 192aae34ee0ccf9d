package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
)

// logInputKey is a hash holding an instance's sealed log_input_url, the
// Logplex endpoint Heroku hands the add-on at provisioning. The URL carries
// a token, so it is sealed like OAuth tokens (I5).
//
//	rekey:loginput:<instance id>  {url: sealed}
func logInputKey(instanceID string) string { return keyPrefix + "loginput:" + instanceID }

// SaveLogInput seals and stores an instance's log_input_url; an empty one
// removes it.
func (s *Store) SaveLogInput(ctx context.Context, instanceID string, u secret.String) error {
	key := logInputKey(instanceID)
	if u.IsZero() {
		return s.rdb.Del(ctx, key).Err()
	}
	sealed, err := s.sealField(key, "url", u)
	if err != nil {
		return err
	}
	// HSET keeps an expiry the key was given when the instance retired;
	// a registration lifts it, as keep_instance does for the instance.
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "url", sealed)
		p.Persist(ctx, key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("save log input: %w", err)
	}
	return nil
}

// LogInput returns an instance's log_input_url, opened; a zero value when
// none was registered.
func (s *Store) LogInput(ctx context.Context, instanceID string) (secret.String, error) {
	key := logInputKey(instanceID)
	sealed, err := s.rdb.HGet(ctx, key, "url").Result()
	switch {
	case errors.Is(err, redis.Nil):
		return secret.String{}, nil
	case err != nil:
		return secret.String{}, fmt.Errorf("load log input: %w", err)
	}
	return s.openField(key, "url", sealed)
}
