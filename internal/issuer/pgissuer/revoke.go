package pgissuer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Revoke locks the role out (NOLOGIN), ends its sessions, hands what it
// owns in the database it was minted for to the owner role it acted as,
// drops its remaining privileges and drops it. The role is looked for on
// the instance's server and, when it is not there (the instance moved since
// it was minted), on every other configured server (find); a role renamed
// since it was minted is found by its comment (renamed). Only a role that
// no server has under either is revoked without more ado, and a server
// that cannot answer fails the revocation (it is retried). A role rekey
// did not mint for this instance is never touched (a permanent error
// naming it).
//
// The credential stops working before anything is waited for: the lockout
// and the end of its sessions (cut) come before the role's lock, which a
// mint or another revoke of the role may hold, and are done again under
// it.
func (iss *Issuer) Revoke(ctx context.Context, instanceID, credentialID string) error {
	if credentialID == "" {
		return issuer.ErrInvalid
	}
	t, err := iss.resolve(ctx, "revoke", instanceID)
	if err != nil {
		return err
	}
	at, comment, exists, err := iss.find(ctx, t, "revoke", credentialID)
	if err != nil {
		return classify("revoke", err)
	}
	if exists {
		if _, err := iss.ours(comment, instanceID, credentialID, credentialID); err != nil {
			return err
		}
		return iss.revokeRole(ctx, at, instanceID, credentialID, credentialID)
	}
	at, roles, err := iss.renamed(ctx, t, instanceID, credentialID)
	if err != nil {
		return classify("revoke", err)
	}
	for _, role := range roles {
		if err := iss.revokeRole(ctx, at, instanceID, credentialID, role); err != nil {
			return err
		}
	}
	return nil
}

// ours reads the rotation from a role's comment and checks that it is the
// credential's: rekey's mark for the instance, of the rotation whose role
// name is credentialID. role is the name the role has now. A role that
// carries the instance's mark under a name this issuer's key does not
// derive from the marked rotation was most likely minted by a worker with
// another key (REKEY_POSTGRES_KEY differs, or, unset, REKEY_ENCRYPTION_KEYS
// is listed in another order): the error says so, since the cure is the
// operator's, not the role's.
func (iss *Issuer) ours(comment, instanceID, credentialID, role string) (mark, error) {
	m, ok := parseMark(comment, instanceID)
	switch {
	case !ok:
		return mark{}, permanent("revoke", CodeNotRekeys, "role %s was not minted by rekey for instance %s: rekey leaves it alone", role, instanceID)
	case iss.derive.roleName(instanceID, m.rotation) != credentialID:
		return mark{}, permanent("revoke", CodeKeyMismatch, "role %s carries rekey's mark for instance %s, but this worker's key "+
			"does not derive its name from the marked rotation: a worker with another PostgreSQL issuer key minted it "+
			"(every process needs the same REKEY_POSTGRES_KEY, or, without it, REKEY_ENCRYPTION_KEYS in the same order), "+
			"or the mark was written by hand; rekey leaves it alone until the keys agree (then retry the dead revocation)",
			role, instanceID)
	}
	return m, nil
}

// revokeRole revokes credentialID's role, named role now, on at's server:
// it cuts the credential's use, then takes the credential's lock (the one
// its mints take) and, if the role is still there and still the
// credential's, drops it.
func (iss *Issuer) revokeRole(ctx context.Context, at target, instanceID, credentialID, role string) error {
	if err := cut(ctx, at.pool, role); err != nil {
		return err
	}
	err := iss.locked(ctx, at, "revoke", credentialID, func(conn *pgxpool.Conn) error {
		comment, exists, err := roleComment(ctx, conn, role)
		switch {
		case err != nil:
			return explain(ctx, conn, "revoke", err)
		case !exists: // a concurrent revoke dropped it
			return nil
		}
		m, err := iss.ours(comment, instanceID, credentialID, role)
		if err != nil {
			return err
		}
		return iss.dropRole(ctx, conn, m.at(at), role)
	})
	if err == nil {
		iss.forget(credentialID)
	}
	return err
}

// renamed finds the roles of credentialID renamed since (ALTER ROLE ...
// RENAME keeps a SCRAM password and the comment, so the credential may
// still log in under the new name): those whose comment is the instance's
// mark of the rotation whose role name is credentialID, on the first
// server that has any (onServers).
func (iss *Issuer) renamed(ctx context.Context, t target, instanceID, credentialID string) (target, []string, error) {
	var at target
	var roles []string
	err := iss.onServers(t, func(o target) (bool, error) {
		rows, err := o.pool.Query(ctx, `SELECT rolname::text, shobj_description(oid, 'pg_authid') FROM pg_roles
			WHERE starts_with(shobj_description(oid, 'pg_authid'), $1) ORDER BY oid`, instanceMark(instanceID)+"rotation=")
		if err != nil {
			return false, explain(ctx, o.pool, "revoke", err)
		}
		for rows.Next() {
			var name, comment string
			if err := rows.Scan(&name, &comment); err != nil {
				return false, err
			}
			if _, err := iss.ours(comment, instanceID, credentialID, name); err == nil {
				roles = append(roles, name)
			}
		}
		if err := rows.Err(); err != nil {
			return false, explain(ctx, o.pool, "revoke", err)
		}
		at = o
		return len(roles) > 0, nil
	})
	return at, roles, err
}

// cut locks the role out and ends its sessions, on any admin connection and
// without waiting for the role's lock: a lock that anything can hold for
// long must not keep a leaked credential working. Both are safe to repeat,
// and dropRole repeats them under the lock. A mint of the same rotation
// cannot be broken by a cut: under the lock it either creates the role, in
// a transaction a cut does not see (so nothing is cut, and this revocation
// drops the role once the mint lets go of the lock), or finds it and
// changes nothing, returning a credential this revocation is about to drop
// either way.
//
// Any role may change its own password, so a session of the credential
// itself can hold its role's catalog row (ALTER ROLE CURRENT_USER PASSWORD
// left uncommitted), and ALTER ROLE ... NOLOGIN would wait behind it for as
// long as that session likes, the credential working on: its sessions are
// ended first too, the lockout's wait is bounded (cutLockWait), and a
// lockout that times out ends the sessions again and tries once more, then
// fails (CodeRoleBusy, retried).
func cut(ctx context.Context, q querier, role string) error {
	r := sanitize(role)
	// Ending the role's sessions takes the role's privileges, which an
	// admin that is no superuser (CREATEROLE) lacks: it grants the role to
	// itself, and DROP ROLE ends that too. From PostgreSQL 16 the grant
	// says it inherits them and may act as the role, whatever the admin's
	// own INHERIT; before, a NOINHERIT admin may only act as the role
	// (terminate, reassign).
	grant := "GRANT " + r + " TO CURRENT_USER"
	var v16 bool
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int >= 160000").Scan(&v16); err != nil {
		return explain(ctx, q, "revoke", err)
	}
	if v16 {
		grant += " WITH INHERIT TRUE, SET TRUE"
	}
	wait := "SELECT pg_catalog.set_config('lock_timeout', '" + strconv.FormatInt(cutLockWait.Milliseconds(), 10) + "', true); "
	// The grant waits behind a session holding the same membership (a
	// grant of the role by hand, left uncommitted) as long as the lockout
	// would behind its catalog row: bounded too, and the lockout, which
	// needs no grant, is done all the same before the call fails.
	granted := settle(ctx, q, wait+grant, "SELECT pg_has_role(current_user, oid, 'USAGE') FROM pg_roles WHERE rolname = $1", role)
	if granted != nil && !errors.Is(granted, errRowBusy) {
		return granted
	}
	lockout := wait + "ALTER ROLE " + r + " NOLOGIN"
	for attempt := 1; ; attempt++ {
		// A refused end of the sessions (terminate could not end them,
		// even as the role), or a grant that waited too long, is
		// returned once the role is locked out, never before: the
		// revocation is retried, and meanwhile the credential must not
		// log in anew.
		ended := terminate(ctx, q, role)
		err := settle(ctx, q, lockout, "SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
		if err == nil && granted != nil {
			return fmt.Errorf("role %s: a session held a grant of it (pg_auth_members), uncommitted, for more than %s: %w",
				r, cutLockWait, &issuer.Error{Op: "revoke", Code: CodeRoleBusy})
		}
		if err == nil && ended != nil {
			return ended
		}
		if err == nil {
			break
		}
		if !errors.Is(err, errRowBusy) {
			return err
		}
		if attempt == 2 {
			return fmt.Errorf("role %s: a session held its catalog row for more than %s: %w", r, cutLockWait,
				&issuer.Error{Op: "revoke", Code: CodeRoleBusy})
		}
	}
	return terminate(ctx, q, role)
}

// cutLockWait bounds the wait of cut's ALTER ROLE ... NOLOGIN for the
// role's catalog row.
const cutLockWait = time.Second

// errRowBusy is settle's answer when its statement's lock_timeout ran out.
var errRowBusy = errors.New("lock_timeout")

// terminate ends the role's sessions. An admin role that does not inherit
// the privileges of the roles granted to it (NOINHERIT, on a server older
// than PostgreSQL 16) may not signal their backends, but may act as a
// role it is a member of (SET ROLE), and any role may end its own
// sessions: refused, it ends them as the role, on one connection and for
// one transaction only (SET LOCAL), so that no pooled connection is left
// acting as the credential.
func terminate(ctx context.Context, q querier, role string) error {
	const stmt = "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = $1"
	_, err := q.Exec(ctx, stmt, role)
	if insufficientPrivilege(err) {
		err = pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+sanitize(role)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, stmt, role)
			return err
		})
	}
	return explain(ctx, q, "revoke", err)
}

// settle runs stmt, a change to the role, and when it fails asks held
// whether what stmt was for holds anyway, the role being gone counting as
// yes: the same statement of a concurrent revoke, outside the lock (cut),
// fails one of them ("tuple concurrently updated", a duplicate
// membership) after doing its work.
func settle(ctx context.Context, q querier, stmt, held, role string) error {
	_, err := q.Exec(ctx, stmt)
	if err == nil {
		return nil
	}
	var ok bool
	switch qerr := q.QueryRow(ctx, held, role).Scan(&ok); {
	case errors.Is(qerr, pgx.ErrNoRows), qerr == nil && ok:
		return nil
	}
	if lockNotAvailable(err) {
		return errRowBusy
	}
	return explain(ctx, q, "revoke", err)
}

// querier is a pool or one of its connections.
type querier interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	QueryRow(context.Context, string, ...any) pgx.Row
	Begin(context.Context) (pgx.Tx, error)
}

// dropRole runs the revocation's statements; each is safe to run again.
func (iss *Issuer) dropRole(ctx context.Context, conn *pgxpool.Conn, t target, role string) error {
	if err := cut(ctx, conn, role); err != nil {
		return err
	}
	r := sanitize(role)
	// A database dropped since the role was minted holds nothing of it,
	// and one where nothing depends on the role (it acted as the owner
	// role, whose objects and grants they are) needs no connection: the
	// database's owner may limit its connections (CONNECTION LIMIT, which
	// binds an admin that is no superuser) and its app hold them all.
	// Privileges on shared objects (dbid 0) go with DROP OWNED there too.
	var owns bool
	if err := conn.QueryRow(ctx, ownsInQuery, role, t.loc.Database).Scan(&owns); err != nil {
		return explain(ctx, conn, "revoke", err)
	}
	settings := reassignSettings(conn.Conn().PgConn().ParameterStatus("server_version"))
	if owns {
		if err := iss.reassign(ctx, t, settings, t.loc.Database, r); err != nil {
			return err
		}
	}
	err := dropIfExists(ctx, conn, r)
	if !dependentsElsewhere(err) {
		return explain(ctx, conn, "revoke", err)
	}
	// The credential reached other databases of the server (every role may
	// connect to "postgres" by default) and left objects, grants or default
	// privileges there: REASSIGN OWNED and DROP OWNED act on one database
	// at a time, so they run in each, then the role goes.
	dbs, err := otherDatabases(ctx, conn, role, t.loc.Database)
	if err != nil {
		return explain(ctx, conn, "revoke", err)
	}
	for _, db := range dbs {
		if err := iss.reassign(ctx, t, settings, db, r); err != nil {
			return err
		}
	}
	if err := dropIfExists(ctx, conn, r); err != nil {
		return explain(ctx, conn, "revoke", err)
	}
	return nil
}

// ownsInQuery says whether anything depends on role $1 (pg_shdepend: what
// it owns, privileges and default privileges granted to it, policies naming
// it) in database $2, if it exists, or on a shared object.
const ownsInQuery = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend s
	JOIN pg_catalog.pg_database d ON d.datname = $2 AND s.dbid IN (0, d.oid)
	WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
	AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1))`

// dropIfExists drops the role, waiting at most reassignLockWait for a lock
// on it: a session that adds a dependency on the role (the customer's app,
// acting as the owner role, granting it a privilege) holds one until its
// transaction ends, and DROP ROLE would wait for it, holding one of the
// pool's connections, for the whole task. Past the wait it fails with
// CodeObjectsBusy and is retried; the credential already cannot log in.
func dropIfExists(ctx context.Context, conn *pgxpool.Conn, quotedRole string) error {
	_, err := conn.Exec(ctx, "SELECT pg_catalog.set_config('lock_timeout', '"+
		strconv.FormatInt(reassignLockWait.Milliseconds(), 10)+"', true); DROP ROLE IF EXISTS "+quotedRole)
	if lockNotAvailable(err) {
		return fmt.Errorf("role %s: a session held a lock on it for more than %s: %w",
			quotedRole, reassignLockWait, &issuer.Error{Op: "revoke", Code: CodeObjectsBusy})
	}
	return err
}

// dependentsElsewhere reports whether err is DROP ROLE refusing because
// objects or privileges of the role remain (SQLSTATE 2BP01).
func dependentsElsewhere(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "2BP01"
}

// otherDatabases lists the databases other than minted, that accept
// connections, where something depends on role (pg_shdepend).
func otherDatabases(ctx context.Context, conn *pgxpool.Conn, role, minted string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT d.datname::text FROM pg_shdepend s
		JOIN pg_database d ON d.oid = s.dbid
		WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)
		AND d.datname <> $2 AND d.datallowconn ORDER BY 1`, role, minted)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// reassignSettings are the settings reassign's connection sends, for a
// server of version (its server_version). The owner role owns the database
// and may give it defaults (ALTER DATABASE ... SET); settings sent at
// connection win over them, so none makes this session read-only,
// short-lived or another role, lets it wait for a lock longer than
// reassignLockWait, or ends it as it opens: local_preload_libraries naming
// a library that is not there, or an idle_session_timeout shorter than a
// round trip to the server, which ends the session before its first query
// arrives (both of which the tenant's own apps may send at connection to
// work on); nor does exit_on_error end it at the refusal that reassign
// answers by running the statements again as the role. A server older than
// PostgreSQL 14 has no idle_session_timeout and refuses a connection that
// sends it.
func reassignSettings(version string) map[string]string {
	settings := map[string]string{"role": "none", "default_transaction_read_only": "off",
		"statement_timeout": "0", "lock_timeout": strconv.FormatInt(reassignLockWait.Milliseconds(), 10),
		"idle_in_transaction_session_timeout": "0", "local_preload_libraries": "", "exit_on_error": "off"}
	// "15.4", "14beta1", "16.2 (Debian 16.2-1)": the major version leads.
	major, _ := strconv.Atoi(version[:strings.IndexFunc(version+" ", notDigit)])
	if major >= 14 {
		settings["idle_session_timeout"] = "0"
	}
	return settings
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// reassignLockWait bounds how long REASSIGN OWNED waits for a table lock
// that the database's own sessions hold. Changing a table's owner needs
// its exclusive lock, and while the statement waits for it every new query
// of the customer's app on that table queues behind it: a few seconds of
// that is the most a revocation may cost the app. Past it the revocation
// fails with CodeObjectsBusy and is retried; the credential already cannot
// log in (cut).
const reassignLockWait = 2 * time.Second

// reassign runs REASSIGN OWNED and DROP OWNED in database db of t's server
// (the one the role was minted for, where its objects and grants live, or
// another it reached), handing what the role owns to the instance's owner
// role, on a connection that sends settings (reassignSettings).
func (iss *Issuer) reassign(ctx context.Context, t target, settings map[string]string, db, quotedRole string) error {
	cfg, err := pgx.ParseConfig(t.server.AdminURL.Reveal())
	if err != nil {
		return &issuer.Error{Op: "revoke", Code: issuer.CodeRequest}
	}
	cfg.Database = db
	cfg.ConnectTimeout = iss.timeout
	cfg.RuntimeParams["application_name"] = "rekey"
	primaryOnly(&cfg.Config)
	for name, value := range settings {
		cfg.RuntimeParams[name] = value
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return classify("revoke", err)
	}
	defer conn.Close(context.Background())
	stmts := []string{
		"REASSIGN OWNED BY " + quotedRole + " TO " + sanitize(t.loc.Owner),
		"DROP OWNED BY " + quotedRole,
	}
	run := func(q querier) error {
		for _, s := range stmts {
			if _, err := q.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	err = run(conn)
	if insufficientPrivilege(err) {
		// Both statements take the privileges of the role and of the
		// owner role, which an admin role that does not inherit them
		// (NOINHERIT) lacks; the role has both (it is a member of the
		// owner role and inherits), and the admin may act as it (cut
		// granted it the role): they run as the role, for one
		// transaction.
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+quotedRole); err != nil {
				return err
			}
			return run(tx)
		})
	}
	if lockNotAvailable(err) {
		return fmt.Errorf("role %s: the database's sessions held a lock on its objects for more than %s: %w",
			quotedRole, reassignLockWait, &issuer.Error{Op: "revoke", Code: CodeObjectsBusy})
	}
	return classify("revoke", err)
}

// lockNotAvailable reports whether err is a lock_timeout running out
// (SQLSTATE 55P03).
func lockNotAvailable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "55P03"
}

// insufficientPrivilege reports whether err is the server refusing a
// statement to the role running it (SQLSTATE 42501).
func insufficientPrivilege(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "42501"
}
