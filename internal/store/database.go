package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Database is where a PostgreSQL-backed instance's database lives, for the
// built-in PostgreSQL issuer (README "PostgreSQL issuer"): a server id the
// partner configured, the database's name and the group role that owns it.
// It holds no secret: the admin connection stays in rekey's configuration.
type Database struct {
	Server string `json:"server"`
	Name   string `json:"name"`
	Owner  string `json:"owner_role"`
}

// databaseServerPattern is what a server id may look like (the keys of
// REKEY_POSTGRES_SERVERS).
var databaseServerPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks a database location, naming the first bad field.
// PostgreSQL names are at most 63 bytes; the issuer quotes them, so any
// other character is allowed but NUL.
func (d Database) Validate() error {
	switch {
	case !databaseServerPattern.MatchString(d.Server):
		return fmt.Errorf("database.server %s is not valid: use lowercase letters, digits, '-' and '_'", secret.QuoteInput(d.Server, 64))
	case !validPGName(d.Name):
		return errors.New("database.name must be 1 to 63 bytes without NUL")
	case !validPGName(d.Owner):
		return errors.New("database.owner_role must be 1 to 63 bytes without NUL")
	}
	return nil
}

func validPGName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := range len(s) {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

// databaseKey is a STRING of one instance's Database as JSON.
func databaseKey(id string) string { return keyPrefix + "database:" + id }

// SetDatabase records where the instance's database lives. It is
// idempotent; a later call replaces the location.
func (s *Store) SetDatabase(ctx context.Context, instanceID string, d Database) error {
	if err := d.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, databaseKey(instanceID), b, 0).Err()
}

// Database returns where the instance's database lives, or ErrNotFound
// when it was registered without one.
func (s *Store) Database(ctx context.Context, instanceID string) (Database, error) {
	b, err := s.rdb.Get(ctx, databaseKey(instanceID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Database{}, fmt.Errorf("database of instance %s: %w", instanceID, ErrNotFound)
	}
	if err != nil {
		return Database{}, err
	}
	var d Database
	if err := json.Unmarshal(b, &d); err != nil {
		return Database{}, fmt.Errorf("database of instance %s: %w", instanceID, err)
	}
	return d, nil
}
