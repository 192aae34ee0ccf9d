package pgissuer

import (
	"context"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// roleMark is the comment on every role rekey mints: rekey revokes only a
// role whose comment starts with its instance's mark. It also records where
// the role was minted (server id, database and owner role, the last two
// quoted as Go strings), since the instance's location may change before
// the role is revoked and the role's name does not say: revoke hands what
// the role owns to that owner in that database (parseMark).
func roleMark(instanceID, rotationID string, loc Location) string {
	return instanceMark(instanceID) + "rotation=" + rotationID + " server=" + loc.Server +
		" database=" + strconv.Quote(loc.Database) + " owner=" + strconv.Quote(loc.Owner)
}

func instanceMark(instanceID string) string { return "rekey instance=" + instanceID + " " }

// Mint creates the rotation's login role, or finds the one a previous call
// created, and returns its config vars. The role is a member of the owner
// role and acts as it (ALTER ROLE ... SET role), so what it creates belongs
// to the owner and every grant and default privilege follows; its password
// never expires (VALID UNTIL is left unset).
func (iss *Issuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	if rotationID == "" {
		return issuer.Credential{}, issuer.ErrInvalid
	}
	t, err := iss.resolve(ctx, "mint", instanceID)
	if err != nil {
		return issuer.Credential{}, err
	}
	role := iss.derive.roleName(instanceID, rotationID)
	password := iss.derive.password(instanceID, rotationID)
	config, err := configVars(t.loc, t.server.appBase(), role, password)
	if err != nil {
		return issuer.Credential{}, err
	}
	err = iss.locked(ctx, t, "mint", role, func(conn *pgxpool.Conn) error {
		return createRole(ctx, conn, t.loc, role, password, roleMark(instanceID, rotationID, t.loc), func(comment string) bool {
			m, ok := parseMark(comment, instanceID)
			return ok && m.rotation == rotationID
		})
	})
	if err != nil {
		return issuer.Credential{}, err
	}
	return issuer.Credential{ID: role, Config: config}, nil
}

// createRole creates role unless it exists with a comment that ours accepts
// (the rotation's mark: the one it writes, or one an earlier rekey wrote,
// without the location), in one transaction so that no role exists without
// its mark.
func createRole(ctx context.Context, conn *pgxpool.Conn, loc Location, role, password, mark string, ours func(string) bool) error {
	if err := checkLocation(ctx, conn, loc); err != nil {
		return err
	}
	comment, exists, err := roleComment(ctx, conn, role)
	switch {
	case err != nil:
		return explain(ctx, conn, "mint", err)
	case exists && ours(comment):
		return nil
	case exists:
		return permanent("mint", CodeNotRekeys, "role %s exists and was not created by rekey for this rotation", role)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return explain(ctx, conn, "mint", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	r, owner := sanitize(role), sanitize(loc.Owner)
	stmts := []string{
		"CREATE ROLE " + r + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT PASSWORD " +
			quoteLiteral(scramVerifier(password)) + " IN ROLE " + owner,
		"ALTER ROLE " + r + " SET role TO " + owner,
		"COMMENT ON ROLE " + r + " IS " + quoteLiteral(mark),
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			_ = tx.Rollback(ctx) // explain asks on the connection
			return explain(ctx, conn, "mint", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return explain(ctx, conn, "mint", err)
	}
	return nil
}

// checkLocation names a missing database or owner role in a permanent
// error, before any statement would fail on it; and refuses an owner role
// whose powers a credential would get (it is a member of the owner and
// acts as it): a superuser, a role that may create roles or databases,
// replicate or bypass row security, a built-in pg_ role (reading the
// server's files, running programs on it, ...) or rekey's admin role, or a
// member of any of those. A registration that names one (a partner's
// provisioning bug) would otherwise hand every customer of the server a
// way out of their own database. rekey's admin role is session_user: an
// admin whose sessions act as the owner (a role default, ALTER ROLE ...
// SET role) makes current_user the owner, which its statements then fail
// as, and explain names the default.
func checkLocation(ctx context.Context, conn *pgxpool.Conn, loc Location) error {
	var db, owner bool
	var powers string
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1), r.oid IS NOT NULL,
		coalesce((SELECT string_agg(m.rolname, ', ' ORDER BY m.rolname) FROM pg_roles m
			WHERE pg_has_role(r.oid, m.oid, 'MEMBER') AND (m.rolsuper OR m.rolcreaterole OR m.rolcreatedb
				OR m.rolreplication OR m.rolbypassrls OR m.rolname = session_user
				OR (starts_with(m.rolname, 'pg_') AND m.rolname <> 'pg_database_owner'))), '')
		FROM (SELECT 1) AS one LEFT JOIN pg_roles r ON r.rolname = $2`, loc.Database, loc.Owner).Scan(&db, &owner, &powers)
	switch {
	case err != nil:
		return explain(ctx, conn, "mint", err)
	case !db:
		return permanent("mint", CodeNoDatabase, "database %q does not exist on server %s", loc.Database, loc.Server)
	case !owner:
		return permanent("mint", CodeNoOwner, "owner role %q does not exist on server %s", loc.Owner, loc.Server)
	case powers != "":
		return permanent("mint", CodeUnsafeOwner, "owner role %q on server %s is or acts as %s: a superuser, a role "+
			"with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, a built-in pg_ role or rekey's admin role; "+
			"its credentials would have those powers", loc.Owner, loc.Server, clip(powers, 200))
	}
	return nil
}

// clip shortens s to at most n bytes, cut between characters, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// roleComment returns the role's comment and whether the role exists.
func roleComment(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, role string) (string, bool, error) {
	var comment *string
	err := q.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, role).Scan(&comment)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, err
	case comment == nil:
		return "", true, nil
	}
	return *comment, true, nil
}
