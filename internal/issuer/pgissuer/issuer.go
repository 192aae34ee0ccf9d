// Package pgissuer is rekey's built-in PostgreSQL issuer (REKEY_ISSUER=postgres):
// each rotation mints a login role that is a member of the instance's owner
// (group) role and acts as it, so old and new credentials work side by side
// through the grace; revoking locks the old role out, ends its sessions,
// hands what it owns to the group role and drops it (README "PostgreSQL
// issuer"). Only roles rekey created, by name and by comment, are touched.
//
// An Issuer holds one connection pool per configured server and is safe for
// concurrent use; reruns of every step, sequential or concurrent, have the
// effect of one (docs/design.md I6).
package pgissuer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Params configures an Issuer.
type Params struct {
	// Servers are the configured servers; at least one.
	Servers []Server
	// Locator finds an instance's database. Required.
	Locator Locator
	// Key derives role names and passwords from rotation ids (derive);
	// at least 32 bytes, and stable while rotations are in flight.
	Key []byte
	// MaxConns bounds each server's admin pool; zero means 4.
	MaxConns int32
	// ConnectTimeout bounds every connection attempt; zero means 10s.
	ConnectTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Issuer is the PostgreSQL issuer.
type Issuer struct {
	pools   map[string]*pgxpool.Pool
	servers map[string]Server
	locator Locator
	derive  derive
	timeout time.Duration
	now     func() time.Time

	mu       sync.Mutex
	lastSeen map[string]issuer.Usage // role -> last sessions seen by Usage
}

var (
	_ issuer.Issuer        = (*Issuer)(nil)
	_ issuer.UsageReporter = (*Issuer)(nil)
)

// New builds the issuer and its pools. It does not connect: a server that
// is down at start-up fails the rotations that need it, transiently.
func New(p Params) (*Issuer, error) {
	if len(p.Servers) == 0 || p.Locator == nil || len(p.Key) < 32 {
		return nil, errors.New("pgissuer: servers, a locator and a key of 32 bytes or more are required")
	}
	iss := &Issuer{pools: map[string]*pgxpool.Pool{}, servers: map[string]Server{}, locator: p.Locator,
		derive: derive{key: p.Key}, timeout: p.ConnectTimeout, now: p.Now, lastSeen: map[string]issuer.Usage{}}
	if iss.timeout <= 0 {
		iss.timeout = 10 * time.Second
	}
	if iss.now == nil {
		iss.now = time.Now
	}
	for _, s := range p.Servers {
		pool, err := newPool(s, p.MaxConns, iss.timeout)
		if err != nil {
			iss.Close()
			return nil, err
		}
		iss.pools[s.ID], iss.servers[s.ID] = pool, s
	}
	return iss, nil
}

func newPool(s Server, maxConns int32, timeout time.Duration) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(s.AdminURL.Reveal())
	if err != nil {
		return nil, fmt.Errorf("pgissuer: server %s: admin_url does not parse", s.ID)
	}
	cfg.MaxConns = 4
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MaxConnIdleTime = time.Minute
	cfg.ConnConfig.ConnectTimeout = timeout
	cfg.ConnConfig.RuntimeParams["application_name"] = "rekey"
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// Close closes every pool.
func (iss *Issuer) Close() {
	for _, p := range iss.pools {
		p.Close()
	}
}

// Servers lists the configured server ids, sorted.
func (iss *Issuer) Servers() []string {
	ids := make([]string, 0, len(iss.servers))
	for id := range iss.servers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// target is one instance's database, resolved.
type target struct {
	loc    Location
	server Server
	pool   *pgxpool.Pool
}

// resolve finds the instance's database and its server's pool.
func (iss *Issuer) resolve(ctx context.Context, op, instanceID string) (target, error) {
	if instanceID == "" {
		return target{}, issuer.ErrInvalid
	}
	loc, err := iss.locator.Locate(ctx, instanceID)
	switch {
	case errors.Is(err, ErrNoLocation):
		return target{}, permanent(op, CodeNoLocation, "instance %s was registered without a database", instanceID)
	case err != nil:
		return target{}, fmt.Errorf("locate instance %s: %w", instanceID, err)
	}
	pool, ok := iss.pools[loc.Server]
	if !ok {
		return target{}, permanent(op, CodeUnknownServer, "instance %s names server %q, which REKEY_POSTGRES_SERVERS does not configure", instanceID, loc.Server)
	}
	return target{loc: loc, server: iss.servers[loc.Server], pool: pool}, nil
}

// find returns the target of the server where role lives, with its
// comment: the instance's server when the role is there, else the first
// other configured server, in id order, that has it (the instance may have
// moved since the role was minted, and roles are cluster-wide, so one
// query a server). exists is false only when no server has the role; an
// error from any server asked is returned, never read as "not there".
func (iss *Issuer) find(ctx context.Context, t target, role string) (target, string, bool, error) {
	comment, exists, err := roleComment(ctx, t.pool, role)
	if err != nil || exists {
		return t, comment, exists, err
	}
	for _, id := range iss.Servers() {
		if id == t.loc.Server {
			continue
		}
		o := t.on(iss, id)
		comment, exists, err := roleComment(ctx, o.pool, role)
		if err != nil || exists {
			return o, comment, exists, err
		}
	}
	return target{}, "", false, nil
}

// on is t moved to the configured server id, the location's database and
// owner role kept.
func (t target) on(iss *Issuer, id string) target {
	t.loc.Server, t.server, t.pool = id, iss.servers[id], iss.pools[id]
	return t
}

// locked runs fn on one admin connection holding a session advisory lock
// on the role's name, so that concurrent mints or revokes of one role
// queue up instead of racing in the catalog.
func locked(ctx context.Context, t target, op, role string, fn func(*pgxpool.Conn) error) error {
	conn, err := t.pool.Acquire(ctx)
	if err != nil {
		return classify(op, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", role); err != nil {
		return classify(op, err)
	}
	defer func() {
		// A failed unlock leaves the lock on a pooled connection: drop it.
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(c, "SELECT pg_advisory_unlock(hashtext($1))", role); err != nil {
			_ = conn.Conn().Close(c)
		}
	}()
	return fn(conn)
}

// sanitize quotes an identifier.
func sanitize(name string) string { return pgx.Identifier{name}.Sanitize() }
