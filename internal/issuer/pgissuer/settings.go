package pgissuer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// An administrator may give rekey's admin role session defaults (ALTER
// ROLE ... SET), and so may its database, the server's configuration or
// admin_url's options: read-only, a short statement_timeout, lock_timeout
// or idle_in_transaction_session_timeout, another role to act as. rekey
// does not undo them (settings sent at connection break a pooler, and a
// transaction's own cannot cover a connection's first query), so each
// fails its statements with a code as generic as any other server error.
// explain names the setting instead, where it was set, and what to run.

// settingBehind names the setting that may have made a server error, by
// its SQLSTATE; "" for none.
func settingBehind(err error) string {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return ""
	}
	switch pg.Code {
	case "25006": // read_only_sql_transaction
		return "default_transaction_read_only"
	case "57014": // query_canceled: by statement_timeout, or by hand
		return "statement_timeout"
	case "55P03": // lock_not_available
		return "lock_timeout"
	case "25P03": // idle_in_transaction_session_timeout
		return "idle_in_transaction_session_timeout"
	case "42501": // insufficient_privilege: acting as another role?
		return "role"
	}
	return ""
}

// explainWait bounds explain's question: it runs only on a failure, which
// it must not hold up.
const explainWait = 5 * time.Second

// beginner is a pool, one of its connections or a querier.
type beginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

// explain is classify(op, err) whose text, when err is the doing of a
// setting of the admin session's (settingBehind), starts with a sentence
// naming it, its value and where it was set, and what to run: read on q,
// the connection that failed or one like it, and only then. The code, and
// so the retries, stay classify's. A setting rekey gave the transaction
// itself (source "session": its bounded lock waits) is no one's to undo.
func explain(ctx context.Context, q beginner, op string, err error) error {
	c := classify(op, err)
	name := settingBehind(err)
	if name == "" || ctx.Err() != nil {
		return c
	}
	qctx, cancel := context.WithTimeout(ctx, explainWait)
	defer cancel()
	s, qerr := readSetting(qctx, q, name)
	switch {
	case qerr != nil && name == "idle_in_transaction_session_timeout":
		// The server ended the session; another could not be had.
		return fmt.Errorf("the server ended a session of rekey's admin role, idle in a transaction past "+
			"idle_in_transaction_session_timeout: reset it for that role (ALTER ROLE … RESET %s): %w", name, c)
	case qerr != nil:
		return c
	}
	if text := s.failed(); text != "" {
		return fmt.Errorf("%s: %w", text, c)
	}
	return c
}

// settingQuery reads setting $1 as the session has it: its value (with its
// unit), and where it was set (pg_settings' source; "" for role, which
// pg_settings does not list). It reads no table, so no lock held on the
// catalog keeps it waiting.
const settingQuery = `SELECT session_user::text, current_user::text, current_database()::text,
	current_setting($1), coalesce((SELECT source FROM pg_catalog.pg_settings WHERE name = $1), '')`

// roleDefaultQuery says where setting $1 was given to the session user, among
// its defaults, the one for its database first: pg_settings' source.
const roleDefaultQuery = `SELECT CASE WHEN d.setdatabase = 0 THEN 'user' ELSE 'database user' END
	FROM pg_catalog.pg_db_role_setting d, unnest(d.setconfig) c
	WHERE d.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user)
	AND d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
	AND starts_with(c, $1 || '=') ORDER BY d.setdatabase DESC LIMIT 1`

// setting is one session setting of the admin role's, as settingQuery
// reads it.
type setting struct {
	name, value, source        string
	session, current, database string // session_user, current_user, current_database()
}

// readSetting reads setting name of a session of q's, in a transaction of
// its own. The defaults that failed a statement would fail a question that
// reads the catalog too (a lock of it held past lock_timeout, a
// statement_timeout shorter than the wait): settingQuery reads none and
// runs under them, so that pg_settings names the admin role's value and
// where it was set; the catalog's answer for role comes after both are
// lifted for the transaction (SET LOCAL).
func readSetting(ctx context.Context, q beginner, name string) (setting, error) {
	s := setting{name: name}
	tx, err := q.Begin(ctx)
	if err != nil {
		return s, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // it only read
	if err := tx.QueryRow(ctx, settingQuery, name).Scan(&s.session, &s.current, &s.database, &s.value, &s.source); err != nil {
		return s, err
	}
	if s.source != "" {
		return s, nil
	}
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0"); err != nil {
		return s, err
	}
	err = tx.QueryRow(ctx, roleDefaultQuery, name).Scan(&s.source)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	return s, err
}

// failed is the sentence for a statement the setting failed, "" when the
// setting cannot have (off, zero, rekey's own).
func (s setting) failed() string {
	if s.source == "session" || s.value == "0" || s.value == "off" {
		return ""
	}
	where, fix := s.undo()
	switch s.name {
	case "default_transaction_read_only":
		return fmt.Sprintf("rekey's admin role runs read-only (default_transaction_read_only is on %s): %s", where, fix)
	case "statement_timeout":
		return fmt.Sprintf("a statement of rekey's admin role ran past statement_timeout (%s %s): %s", s.value, where, fix)
	case "lock_timeout":
		return fmt.Sprintf("a statement of rekey's admin role waited for a lock past lock_timeout (%s %s): %s", s.value, where, fix)
	case "idle_in_transaction_session_timeout":
		return fmt.Sprintf("the server ended a session of rekey's admin role, idle in a transaction past "+
			"idle_in_transaction_session_timeout (%s %s): %s", s.value, where, fix)
	case "role":
		if s.current == s.session {
			return ""
		}
		return fmt.Sprintf("rekey's admin role %s acts as role %s, which may not do this (role is set to %s %s): %s",
			sanitize(s.session), sanitize(s.current), sanitize(s.current), where, fix)
	}
	return ""
}

// neutral is the value of each setting that undoes it.
var neutral = map[string]string{"default_transaction_read_only": "off", "statement_timeout": "0", "lock_timeout": "0",
	"idle_in_transaction_session_timeout": "0", "role": "none"}

// undo says where the setting was set and the statement (or change) that
// undoes it for the admin role.
func (s setting) undo() (where, fix string) {
	role := sanitize(s.session)
	switch s.source {
	case "user":
		return "for role " + role, "ALTER ROLE " + role + " RESET " + s.name
	case "database user":
		db := sanitize(s.database)
		return "for role " + role + " in database " + db, "ALTER ROLE " + role + " IN DATABASE " + db + " RESET " + s.name
	case "client":
		return "by admin_url's options", "remove -c " + s.name + " from admin_url's options"
	case "database":
		where = "for database " + sanitize(s.database)
	default:
		where = "in the server's configuration"
	}
	return where, "ALTER ROLE " + role + " SET " + s.name + " = " + neutral[s.name]
}
