package pgissuer

import (
	"context"
	"errors"
)

// Location is where an instance's database lives, as its registration says
// (README "The PostgreSQL issuer"). It holds no secret: the admin credentials
// stay in the server's configuration.
type Location struct {
	// Server is the id of a configured server.
	Server string
	// Database is the instance's database on that server.
	Database string
	// Owner is the group role that owns the database's objects; every
	// role rekey mints is a member of it and acts as it.
	Owner string
	// ConfigVars are the instance's registered config var names.
	ConfigVars []string
}

// Locator finds an instance's Location. The store implements it over the
// instance registry; it must be safe for concurrent use.
type Locator interface {
	Locate(ctx context.Context, instanceID string) (Location, error)
}

// ErrNoLocation is what a Locator returns for an instance registered
// without a database: no rotation can mint for it.
var ErrNoLocation = errors.New("pgissuer: instance has no database registered")

// LocatorFunc adapts a function to Locator.
type LocatorFunc func(ctx context.Context, instanceID string) (Location, error)

// Locate calls f.
func (f LocatorFunc) Locate(ctx context.Context, instanceID string) (Location, error) {
	return f(ctx, instanceID)
}
