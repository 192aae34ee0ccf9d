package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// devKey is the hash by which `rekey dev` knows a database as its own:
//
//	rekey:dev -> claimed_at: RFC 3339, instance:<id>: "1" per instance it registered
//
// It is written only by `rekey dev` (internal/devstack), never by the
// Procfile's processes.
func devKey() string { return keyPrefix + "dev" }

// devInstanceField is the field of devKey that lists one instance.
const devInstanceField = "instance:"

// DevMark is what devKey says about a database.
type DevMark struct {
	// Claimed is true once a `rekey dev` has claimed the database.
	Claimed bool
	// Instances are the ids of the instances `rekey dev` registered.
	Instances map[string]bool
}

// MarkDev claims the database for `rekey dev` and records ids as
// instances it registers. It is idempotent.
func (s *Store) MarkDev(ctx context.Context, ids ...string) error {
	fields := []any{"claimed_at", s.now().UTC().Format(time.RFC3339)}
	for _, id := range ids {
		fields = append(fields, devInstanceField+id, "1")
	}
	if err := s.rdb.HSetNX(ctx, devKey(), "claimed_at", fields[1]).Err(); err != nil {
		return fmt.Errorf("mark database as rekey dev's: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := s.rdb.HSet(ctx, devKey(), fields[2:]...).Err(); err != nil {
		return fmt.Errorf("mark instances as rekey dev's: %w", err)
	}
	return nil
}

// DevMark reads the mark MarkDev writes.
func (s *Store) DevMark(ctx context.Context) (DevMark, error) {
	h, err := s.rdb.HGetAll(ctx, devKey()).Result()
	if err != nil {
		return DevMark{}, fmt.Errorf("read rekey dev's mark: %w", err)
	}
	m := DevMark{Claimed: h["claimed_at"] != "", Instances: map[string]bool{}}
	for f := range h {
		if id, ok := strings.CutPrefix(f, devInstanceField); ok {
			m.Instances[id] = true
		}
	}
	return m, nil
}

// IsKey reports whether key is one of rekey's own keys (under its prefix).
func IsKey(key string) bool { return strings.HasPrefix(key, keyPrefix) }
