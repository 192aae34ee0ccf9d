package pgissuer

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// locked runs fn on one admin connection holding a session advisory lock
// on the role's name, so that concurrent mints or revokes of one role
// queue up instead of racing in the catalog. Nothing else may hold the
// lock or keep rekey waiting for it: its key needs REKEY_POSTGRES_KEY
// (derive.lockKey), where hashtext of the name was one any role of the
// server could compute from pg_roles and hold; and the wait is bounded by
// LockWait and ctx's deadline, so a lock held too long costs the call a
// transient CodeRoleBusy rather than one of the pool's few connections for
// the whole task.
func (iss *Issuer) locked(ctx context.Context, t target, op, role string, fn func(*pgxpool.Conn) error) error {
	conn, err := t.pool.Acquire(ctx)
	if err != nil {
		return classify(op, err)
	}
	defer conn.Release()
	key := iss.derive.lockKey(role)
	if err := iss.lock(ctx, conn, op, key); err != nil {
		return err
	}
	defer func() {
		// A failed unlock leaves the lock on a pooled connection: drop it.
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(c, "SELECT pg_advisory_unlock($1)", key); err != nil {
			_ = conn.Conn().Close(c)
		}
	}()
	return fn(conn)
}

// lock takes the session lock on key in a transaction whose lock_timeout
// bounds the wait: the lock outlives the transaction, the setting does
// not. A lock_timeout is the server's own, so the connection stays usable
// and goes back to the pool; after any other failure the lock may be held
// (a session lock survives a rollback) and the connection is closed.
func (iss *Issuer) lock(ctx context.Context, conn *pgxpool.Conn, op string, key int64) error {
	wait := iss.lockWait
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	// lock_timeout 0 would mean no bound at all.
	ms := strconv.FormatInt(max(wait.Milliseconds(), 1), 10)
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", ms); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_advisory_lock($1)", key)
		return err
	})
	switch {
	case err == nil:
		return nil
	case lockNotAvailable(err):
		return &issuer.Error{Op: op, Code: CodeRoleBusy}
	}
	err = explain(ctx, conn, op, err)
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Conn().Close(c)
	return err
}
