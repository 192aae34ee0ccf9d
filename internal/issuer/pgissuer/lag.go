package pgissuer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// systemIDQuery reads the server's cluster: a standby shares its primary's
// system identifier (pg_basebackup copies it), another cluster's differs.
const systemIDQuery = "SELECT system_identifier::text FROM pg_catalog.pg_control_system()"

// appServerQuery is what the app URL's server says of itself to admin_url's
// role: in recovery, of which cluster, and whether it has the role ($1).
const appServerQuery = "SELECT pg_catalog.pg_is_in_recovery(), s.system_identifier::text, " +
	"EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1) FROM pg_catalog.pg_control_system() s"

// errAdminRefused is the app URL's server refusing admin_url's role, or
// its connection to the role's database: a standby of the primary's
// cluster has both, replicated.
var errAdminRefused = errors.New("it refused admin_url's role too")

// appServer is the app URL's server, as it answers appServerQuery.
type appServer struct {
	inRecovery, hasRole bool
	system              string
}

// lagged says what the app URL's server refusing a login of role's that
// the primary accepts means. Only a standby of the primary's cluster (in
// recovery, of its system identifier) that has not replayed the role yet
// lags, and will let the role in: the verify fails transiently
// (login_lagging). Any other server (another cluster, a pooler whose auth
// file lacks the role, one that lets admin_url's role through to the
// primary) refuses the customer's app as it refused rekey, for good: a
// permanent login_failed at once, not hours of retries with the
// instance's rotation in flight. A standby that has replayed the role
// since is asked the role's login again, over the app URL as before: its
// pass is the verify's, its refusal is for good. It is asked as
// admin_url's role, over the app URL's hosts as the role's login went.
func (iss *Issuer) lagged(ctx context.Context, t target, role, password string) error {
	var primary string
	if err := t.pool.QueryRow(ctx, systemIDQuery).Scan(&primary); err != nil {
		return explain(ctx, t.pool, "verify", err)
	}
	s, err := iss.askAppServer(ctx, t, role)
	switch {
	case errors.Is(err, errAdminRefused):
		return notAStandby(role, err.Error())
	case err != nil:
		return classify("verify", err)
	case !s.inRecovery:
		return notAStandby(role, "it is not in recovery")
	case s.system != primary:
		return notAStandby(role, "it is a standby of another cluster")
	case !s.hasRole:
		return fmt.Errorf("role %s logs in on the primary, but the app URL's server, a standby of its cluster, "+
			"has not replayed the role yet (retried): %w", role, &issuer.Error{Op: "verify", Code: CodeLoginLagging})
	}
	return iss.loginAgain(ctx, t, role, password)
}

// askAppServer connects to the app URL's server as admin_url's role, to
// the role's database, and reads appServerQuery.
func (iss *Issuer) askAppServer(ctx context.Context, t target, role string) (appServer, error) {
	admin, err := pgx.ParseConfig(t.server.AdminURL.Reveal())
	if err != nil {
		return appServer{}, &issuer.Error{Op: "verify", Code: issuer.CodeRequest}
	}
	cfg, err := iss.appConfig(t, admin.User, admin.Password)
	if err != nil {
		return appServer{}, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		if refusesAdmin(err) {
			return appServer{}, errAdminRefused
		}
		return appServer{}, err
	}
	defer conn.Close(context.Background())
	ctx, cancel := answerWithin(ctx, cfg)
	defer cancel()
	var s appServer
	err = conn.QueryRow(ctx, appServerQuery, role).Scan(&s.inRecovery, &s.system, &s.hasRole)
	return s, err
}

// refusesAdmin reports whether a connection's err is the server refusing
// the role, or its connection to the database (missing, or not granted).
func refusesAdmin(err error) bool {
	var pg *pgconn.PgError
	return isLoginFailure(err) || errors.As(err, &pg) && (pg.Code == "3D000" || pg.Code == "42501")
}

// loginAgain logs in as role over the app URL once more, after its standby
// was seen to have replayed the role: accepted, the verify passes (the
// standby caught up in between); refused, it refuses the role for good.
func (iss *Issuer) loginAgain(ctx context.Context, t target, role, password string) error {
	cfg, err := iss.appConfig(t, role, password)
	if err != nil {
		return err
	}
	err = connectAs(ctx, cfg, role)
	if isLoginFailure(err) {
		return permanent("verify", CodeLoginFailed, "role %s logs in on the primary, and the app URL's server, a standby "+
			"of its cluster, has replayed it but refuses its login: its pg_hba.conf, or a pooler in front of it, "+
			"refuses the role", role)
	}
	return classify("verify", err)
}

// notAStandby is the permanent failure of a login the primary accepts and
// the app URL's server, not a lagging standby of its cluster, refused.
func notAStandby(role, why string) error {
	return permanent("verify", CodeLoginFailed, "role %s logs in on the primary, but the app URL's server refused it "+
		"and is not a standby of this cluster (%s): another server, or a pooler that does not know the role, "+
		"which refuses the customer's app too; point app_url at the primary or a replica of it", role, why)
}
