// Package pgissuer is rekey's built-in PostgreSQL issuer (REKEY_ISSUER=postgres):
// each rotation mints a login role that is a member of the instance's owner
// (group) role and acts as it, so old and new credentials work side by side
// through the grace; revoking locks the old role out, ends its sessions,
// hands what it owns to the group role and drops it (README "The PostgreSQL
// issuer"). Only roles rekey created, by name and by comment, are touched
// (a role renamed by hand, by its comment).
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
	// LockWait bounds the wait for a role's advisory lock while another
	// mint or revoke of that role holds it (locked); past it the call fails,
	// transiently, with CodeRoleBusy. Zero means 10s.
	LockWait time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// UsageMemory is how long Usage remembers a session it saw once the
	// role has none: past it the role reads as never used, as after a
	// restart, and is forgotten. Zero means DefaultUsageMemory.
	UsageMemory time.Duration
}

// DefaultUsageMemory is Params.UsageMemory's default.
const DefaultUsageMemory = time.Hour

// Issuer is the PostgreSQL issuer.
type Issuer struct {
	pools    map[string]*pgxpool.Pool
	servers  map[string]Server
	locator  Locator
	derive   derive
	timeout  time.Duration
	lockWait time.Duration
	now      func() time.Time

	mu       sync.Mutex
	lastSeen map[string]issuer.Usage // role -> last sessions seen by Usage, within memory
	memory   time.Duration
	swept    time.Time // when lastSeen was last swept of what is past memory
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
		derive: derive{key: p.Key}, timeout: p.ConnectTimeout, lockWait: p.LockWait, now: p.Now, lastSeen: map[string]issuer.Usage{},
		memory: p.UsageMemory}
	if iss.memory <= 0 {
		iss.memory = DefaultUsageMemory
	}
	if iss.timeout <= 0 {
		iss.timeout = 10 * time.Second
	}
	if iss.lockWait <= 0 {
		iss.lockWait = 10 * time.Second
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
	primaryOnly(&cfg.ConnConfig.Config)
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
// comment (onServers). exists is false only when no server has the role.
// A server's error is op's, explained on its pool (explain).
func (iss *Issuer) find(ctx context.Context, t target, op, role string) (target, string, bool, error) {
	var at target
	var comment string
	err := iss.onServers(t, func(o target) (bool, error) {
		c, exists, err := roleComment(ctx, o.pool, role)
		if err != nil {
			return false, explain(ctx, o.pool, op, err)
		}
		if exists {
			at, comment = o, c
		}
		return exists, nil
	})
	return at, comment, at.pool != nil, err
}

// onServers calls look with the instance's server, then with every other
// configured server, in id order, until one finds what it looks for: the
// instance may have moved since a role was minted, and roles are
// cluster-wide, so one query a server. An error from any server asked is
// returned, never read as "not there".
func (iss *Issuer) onServers(t target, look func(target) (bool, error)) error {
	if found, err := look(t); err != nil || found {
		return err
	}
	for _, id := range iss.Servers() {
		if id == t.loc.Server {
			continue
		}
		if found, err := look(t.on(iss, id)); err != nil || found {
			return err
		}
	}
	return nil
}

// on is t moved to the configured server id, the location's database and
// owner role kept.
func (t target) on(iss *Issuer, id string) target {
	t.loc.Server, t.server, t.pool = id, iss.servers[id], iss.pools[id]
	return t
}

// sanitize quotes an identifier.
func sanitize(name string) string { return pgx.Identifier{name}.Sanitize() }
