package pgissuer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// errInRecovery is an admin connection's check refusing a server in
// recovery. Its text is the sentence the operator reads.
var errInRecovery = errors.New("the admin URL reached a PostgreSQL server in recovery (a standby, which may " +
	"lag behind the primary and can change no role) and no primary: point admin_url at the primary " +
	"(of several hosts listed, rekey uses the first that is not in recovery)")

// primaryOnly makes every admin connection made with cfg check, once, as it
// opens, that its server is not in recovery (pg_is_in_recovery): a hot
// standby lags behind its primary, so a role minted there since would read
// as gone, and a revocation as done while the primary still lets the
// credential log in (docs/design.md I3); mints and usage checks would
// answer for the wrong server too. A URL listing several hosts goes on to
// the next one (pgx tries each host against the check), so the primary is
// found wherever it is in the list, as libpq's target_session_attrs=primary
// would, and target_session_attrs=read-write is not needed; with none, the
// call fails transiently with CodeInRecovery. A check the URL's own
// target_session_attrs asks for runs after this one. It costs one query a
// connection, none a call.
func primaryOnly(cfg *pgconn.Config) {
	theirs := cfg.ValidateConnect
	cfg.ValidateConnect = func(ctx context.Context, conn *pgconn.PgConn) error {
		if err := notInRecovery(ctx, conn); err != nil {
			return err
		}
		if theirs != nil {
			return theirs(ctx, conn)
		}
		return nil
	}
}

// notInRecovery fails with errInRecovery on a server in recovery.
func notInRecovery(ctx context.Context, conn *pgconn.PgConn) error {
	res := conn.ExecParams(ctx, "SELECT pg_catalog.pg_is_in_recovery()", nil, nil, nil, nil).Read()
	switch {
	case res.Err != nil:
		return res.Err
	case len(res.Rows) == 1 && len(res.Rows[0]) == 1 && string(res.Rows[0][0]) == "f":
		return nil
	}
	return errInRecovery
}

// inRecovery is classify's answer for errInRecovery: the sentence, and a
// transient CodeInRecovery (a standby may be promoted, and the operator may
// fix the URL while the call is retried).
func inRecovery(op string) error {
	return fmt.Errorf("%w: %w", errInRecovery, &issuer.Error{Op: op, Code: CodeInRecovery})
}
