package pgissuer

import (
	"context"
	"errors"

	"github.com/rekeyhq/rekey/internal/store"
)

// StoreLocator finds locations in the instance registry: the database a
// registration named ("database") and the instance's config var names.
func StoreLocator(s *store.Store) Locator {
	return LocatorFunc(func(ctx context.Context, instanceID string) (Location, error) {
		db, err := s.Database(ctx, instanceID)
		if errors.Is(err, store.ErrNotFound) {
			return Location{}, ErrNoLocation
		}
		if err != nil {
			return Location{}, err
		}
		in, err := s.Instance(ctx, instanceID)
		if err != nil {
			return Location{}, err
		}
		return Location{Server: db.Server, Database: db.Name, Owner: db.Owner, ConfigVars: in.ConfigVars}, nil
	})
}
