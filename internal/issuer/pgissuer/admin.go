package pgissuer

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ownSettings undo, for one transaction, the defaults an administrator may
// give rekey's admin role, or a database's owner (the tenant) its database
// (ALTER ROLE or ALTER DATABASE ... SET), meant for people's sessions: none
// makes rekey act as another role, cuts its statements or its transactions
// short. Each is SET LOCAL, sent with BEGIN in one query string so that no
// default timeout runs between them: a session-level SET, or a setting sent
// at connection (a startup parameter PgBouncer refuses unless its
// ignore_startup_parameters lists it), would outlive rekey's transaction
// on a pooled server connection, or break every admin_url through
// PgBouncer. Every wait of rekey's is bounded by its own lock_timeout and
// the call's deadline.
const ownSettings = "SET LOCAL ROLE NONE; SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0"

var (
	// writeTx begins an admin transaction on the primary: READ WRITE
	// whatever default_transaction_read_only says.
	writeTx = pgx.TxOptions{BeginQuery: "BEGIN READ WRITE; " + ownSettings}
	// readTx begins one on a server that may be a standby, where READ
	// WRITE is refused.
	readTx = pgx.TxOptions{BeginQuery: "BEGIN READ ONLY; " + ownSettings}
)

// beginner is what rekey's admin transactions begin on: a pool, one of its
// connections, or a connection of its own.
type beginner interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}

// own runs every statement of rekey's admin work in a transaction begun
// with its options (ownSettings): Exec and QueryRow in one each, and
// Begin's transaction for the statements that go together.
type own struct {
	b    beginner
	opts pgx.TxOptions
}

// admin is b's admin work on the primary (writeTx).
func admin(b beginner) own { return own{b: b, opts: writeTx} }

func (o own) Begin(ctx context.Context) (pgx.Tx, error) { return o.b.BeginTx(ctx, o.opts) }

func (o own) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := pgx.BeginFunc(ctx, o, func(tx pgx.Tx) error {
		var err error
		tag, err = tx.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

func (o own) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return ownRow{o: o, ctx: ctx, sql: sql, args: args}
}

// ownRow is a row read in its own transaction when it is scanned.
type ownRow struct {
	o    own
	ctx  context.Context
	sql  string
	args []any
}

func (r ownRow) Scan(dest ...any) error {
	return pgx.BeginFunc(r.ctx, r.o, func(tx pgx.Tx) error { return tx.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...) })
}

var _ querier = own{}
