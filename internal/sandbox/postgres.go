package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// DefaultDevPostgresURL is where `rekey dev --issuer postgres` looks for a
// local PostgreSQL when REKEY_DEV_POSTGRES_URL is not set.
const DefaultDevPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Postgres is a local PostgreSQL prepared for `rekey dev --issuer postgres`:
// sample databases, each owned by a group role, whose login roles the
// PostgreSQL issuer rotates. Close drops everything it made.
type Postgres struct {
	adminURL string
	key      []byte
	prefix   string
	dbs      []store.Database
}

// StartPostgres connects to the local PostgreSQL at adminURL (empty means
// DefaultDevPostgresURL) as a role that may create databases and roles.
// When none answers, its error is a sentence saying how to get one.
func StartPostgres(ctx context.Context, adminURL string) (*Postgres, error) {
	if adminURL == "" {
		adminURL = DefaultDevPostgresURL
	}
	if _, err := pgx.ParseConfig(adminURL); err != nil {
		// Not a PostgreSQL that did not answer: the parser's error may
		// echo the value, password included, so it is not quoted.
		return nil, fmt.Errorf("REKEY_DEV_POSTGRES_URL is not a postgres:// URL rekey can read: write it as %s, "+
			"with a superuser and the host and port of your local PostgreSQL", DefaultDevPostgresURL)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("rekey dev --issuer postgres needs a local PostgreSQL and none answered at %s (%s): "+
			"install one (apt-get install postgresql, brew install postgresql, or docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres) "+
			"or set REKEY_DEV_POSTGRES_URL to a superuser's postgres:// URL", redactURL(adminURL), driverCode(err))
	}
	_ = conn.Close(ctx)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Postgres{adminURL: adminURL, key: key, prefix: "rekeydev_" + randomHex(4)}, nil
}

// Env adds the PostgreSQL issuer's variables to a rekey process's env.
func (p *Postgres) Env(env map[string]string) {
	servers, _ := json.Marshal(map[string]string{"local": p.adminURL})
	env["REKEY_ISSUER"] = "postgres"
	env["REKEY_POSTGRES_SERVERS"] = string(servers)
	env["REKEY_POSTGRES_KEY"] = base64.StdEncoding.EncodeToString(p.key)
}

// Provision creates n sample databases and owner roles, mints each one's
// first role with the PostgreSQL issuer, adds the add-ons to the fake
// Heroku and registers them through reg with their database.
func (p *Postgres) Provision(ctx context.Context, sb *Sandbox, reg *registry.Registry, n int) ([]Sample, error) {
	locs := map[string]pgissuer.Location{}
	out := make([]Sample, n)
	for i := range n {
		out[i] = Sample{ID: fmt.Sprintf("%s-%03d", p.prefix, i), APIVersion: store.APIv3}
		db := store.Database{Server: "local", Name: fmt.Sprintf("%s_%03d", p.prefix, i), Owner: fmt.Sprintf("%s_%03d_owner", p.prefix, i)}
		if err := p.createDatabase(ctx, db); err != nil {
			return nil, err
		}
		locs[out[i].ID] = pgissuer.Location{Server: db.Server, Database: db.Name, Owner: db.Owner, ConfigVars: []string{"DATABASE_URL"}}
	}
	servers, _ := pgissuer.ParseServers([]byte(`{"local":` + mustJSON(p.adminURL) + `}`))
	iss, err := pgissuer.New(pgissuer.Params{Servers: servers, Key: p.key,
		Locator: pgissuer.LocatorFunc(func(_ context.Context, id string) (pgissuer.Location, error) { return locs[id], nil })})
	if err != nil {
		return nil, err
	}
	defer iss.Close()
	for i := range out {
		if err := p.register(ctx, sb, reg, iss, &out[i], i, locs[out[i].ID]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *Postgres) register(ctx context.Context, sb *Sandbox, reg *registry.Registry, iss *pgissuer.Issuer, s *Sample, i int, loc pgissuer.Location) error {
	cred, err := iss.Mint(ctx, s.ID, "provision")
	if err != nil {
		return fmt.Errorf("mint the first role of %s: %w", s.ID, err)
	}
	s.Provisioned = cred.ID
	spec := herokufake.AddonSpec{ID: s.ID, Name: fmt.Sprintf("pgaddon-%d", i), App: fmt.Sprintf("pgapp-%d", i),
		ConfigVars: []string{"DATABASE_URL"}, InitialConfig: map[string]string{"DATABASE_URL": cred.Config["DATABASE_URL"].Reveal()}}
	if err := sb.Fake.AddAddon(spec); err != nil {
		return err
	}
	return reg.Put(ctx, registry.Input{ID: s.ID, APIVersion: store.APIv3, ConfigVars: spec.ConfigVars,
		CurrentCredentialID: cred.ID, CurrentConfig: cred.Config,
		OAuthGrant: &registry.Grant{Code: secret.New(sb.Fake.GrantCode(s.ID))}, Database: &store.Database{Server: loc.Server, Name: loc.Database, Owner: loc.Owner}})
}

func (p *Postgres) createDatabase(ctx context.Context, db store.Database) error {
	name, owner := pgx.Identifier{db.Name}.Sanitize(), pgx.Identifier{db.Owner}.Sanitize()
	for _, s := range []string{"CREATE ROLE " + owner + " NOLOGIN", "CREATE DATABASE " + name + " OWNER " + owner} {
		if err := p.exec(ctx, p.adminURL, s); err != nil {
			return fmt.Errorf("create sample database %s: %s", db.Name, driverCode(err))
		}
	}
	p.dbs = append(p.dbs, db)
	cfg, err := pgx.ParseConfig(p.adminURL)
	if err != nil {
		return err
	}
	cfg.Database = db.Name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to sample database %s: %s", db.Name, driverCode(err))
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ALTER SCHEMA public OWNER TO "+owner)
	return err
}

// Close drops the sample databases, their owner roles and every role rekey
// minted in them (the members of the owner roles).
func (p *Postgres) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, db := range p.dbs {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db.Name}.Sanitize()+" WITH (FORCE)")
		rows, _ := conn.Query(ctx, `SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member
			JOIN pg_roles g ON g.oid = a.roleid WHERE g.rolname = $1 AND starts_with(m.rolname, $2)`, db.Owner, pgissuer.RolePrefix)
		members, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, m := range append(members, db.Owner) {
			_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{m}.Sanitize())
		}
	}
}

func (p *Postgres) exec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func mustJSON(s string) string { b, _ := json.Marshal(s); return string(b) }

// redactURL names a URL's host and port only: it may hold a password.
func redactURL(raw string) string {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return "REKEY_DEV_POSTGRES_URL"
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

// driverCode keeps only the kind of a driver error: its text may name
// the user or echo a value.
func driverCode(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return "SQLSTATE " + pg.Code
	}
	return "no connection"
}
