package pgissuer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Failure codes of the PostgreSQL issuer, on top of issuer's own. They never
// change once released.
const (
	CodeNoLocation    = "no_database"          // the instance was registered without a database
	CodeUnknownServer = "unknown_server"       // its server id is not in REKEY_POSTGRES_SERVERS
	CodeNoDatabase    = "database_missing"     // its database does not exist
	CodeNoOwner       = "owner_role_missing"   // its owner role does not exist
	CodeUnsafeOwner   = "owner_role_unsafe"    // its owner role holds powers no customer may have
	CodeNotRekeys     = "role_not_rekeys"      // a role rekey did not create: never touched
	CodeKeyMismatch   = "role_key_mismatch"    // rekey's mark, but a name another key derived: never touched
	CodeLoginFailed   = "login_failed"         // the credential did not log in
	CodeLoginLagging  = "login_lagging"        // the app URL's standby has not replayed a role the primary accepts
	CodeNotPermitted  = "not_permitted"        // the admin role lacks a privilege
	CodeUnavailable   = "server_unavailable"   // the server cannot serve now (starting, shutting down, full)
	CodeInRecovery    = "server_in_recovery"   // the admin URL reached a standby, not the primary
	CodeRoleBusy      = "role_busy"            // another mint or revoke of the role held its lock past LockWait
	CodeObjectsBusy   = "objects_busy"         // the database's sessions held a lock on the role's objects
	CodePostgres      = "postgres_error"       // any other error the server reported
	CodeBadConfigVar  = "config_var_unmatched" // a registered config var the issuer cannot fill
)

// permanent is a failure retrying cannot help: it carries a sentence of
// rekey's own naming what is missing, and a 4xx status so that
// issuer.IsPermanent sees it (422 for verify means "does not work").
func permanent(op, code string, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, &issuer.Error{Op: op, Status: http.StatusUnprocessableEntity, Code: code})...)
}

// classify turns a driver error into an issuer.Error, keeping no text of
// the driver's or the server's: a connection error may name the admin
// user, and nothing proves a server message never echoes a literal.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ie *issuer.Error
	if errors.As(err, &ie) {
		return err
	}
	if errors.Is(err, errInRecovery) {
		return inRecovery(op)
	}
	return &issuer.Error{Op: op, Code: code(err)}
}

// code reduces err to a failure code, as ordered rules.
func code(err error) string {
	var pg *pgconn.PgError
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	// The caller's deadline or cancellation comes first: the driver
	// reports it wrapped in whatever it was doing.
	case errors.Is(err, context.Canceled):
		return issuer.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return issuer.CodeTimeout
	// The server answered: its SQLSTATE class says what happened.
	case errors.As(err, &pg):
		return pgCode(pg.Code)
	case errors.As(err, &dnsErr):
		return issuer.CodeDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return issuer.CodeRefused
	case errors.Is(err, syscall.ECONNRESET):
		return issuer.CodeReset
	}
	return issuer.CodeTransport
}

// pgCode maps an SQLSTATE to a code. Every one of them is transient
// (Status 0): the permanent failures rekey can name are found by its own
// queries, before the statement that would fail.
func pgCode(state string) string {
	switch {
	case state == "28P01" || state == "28000":
		return CodeLoginFailed
	case state == "42501":
		return CodeNotPermitted
	case len(state) == 5 && (state[:2] == "08" || state[:2] == "53" || state[:2] == "57" || state[:2] == "40"):
		return CodeUnavailable
	}
	return CodePostgres
}

// isLoginFailure reports whether err is the server refusing a password.
func isLoginFailure(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "28P01" || pg.Code == "28000")
}
