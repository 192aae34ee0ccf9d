package pgissuer

import (
	"context"
	"net/url"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Verify logs in as the credential over a new connection to the instance's
// database, as the customer's app will, and checks who it is. A refused
// login is permanent (it does not work); an unreachable server is
// transient. The credential's id names its role; the password is derived
// again, never read back.
func (iss *Issuer) Verify(ctx context.Context, instanceID, credentialID string) error {
	if credentialID == "" {
		return issuer.ErrInvalid
	}
	t, err := iss.resolve(ctx, "verify", instanceID)
	if err != nil {
		return err
	}
	rotationID, ok, err := iss.rotationOf(ctx, t, instanceID, credentialID)
	switch {
	case err != nil:
		return classify("verify", err)
	case !ok:
		return permanent("verify", CodeLoginFailed, "role %s does not exist or was not minted by rekey for instance %s", credentialID, instanceID)
	}
	return iss.login(ctx, t, credentialID, iss.derive.password(instanceID, rotationID))
}

// login connects as role and checks that the session is role's.
func (iss *Issuer) login(ctx context.Context, t target, role, password string) error {
	u := *t.server.appBase()
	u.User = url.UserPassword(role, password)
	u.Path = "/" + t.loc.Database
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return &issuer.Error{Op: "verify", Code: issuer.CodeRequest}
	}
	cfg.ConnectTimeout = iss.timeout
	cfg.RuntimeParams["application_name"] = "rekey-verify"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if isLoginFailure(err) {
		return permanent("verify", CodeLoginFailed, "role %s could not log in to database %q", role, t.loc.Database)
	}
	if err != nil {
		return classify("verify", err)
	}
	defer conn.Close(context.Background())
	var session string
	if err := conn.QueryRow(ctx, "SELECT session_user::text").Scan(&session); err != nil {
		return classify("verify", err)
	}
	if session != role {
		return permanent("verify", CodeLoginFailed, "a login as role %s ran as %s", role, session)
	}
	return nil
}

// rotationOf reads the rotation id from the role's mark, and reports
// whether the role exists and is rekey's for the instance.
func (iss *Issuer) rotationOf(ctx context.Context, t target, instanceID, role string) (string, bool, error) {
	comment, exists, err := roleComment(ctx, t.pool, role)
	if err != nil || !exists {
		return "", false, err
	}
	rotationID, ok := parseMark(comment, instanceID)
	if !ok || iss.derive.roleName(instanceID, rotationID) != role {
		return "", false, nil
	}
	return rotationID, true, nil
}

// parseMark returns the rotation id of an instance's mark.
func parseMark(comment, instanceID string) (string, bool) {
	prefix := instanceMark(instanceID) + "rotation="
	if len(comment) <= len(prefix) || comment[:len(prefix)] != prefix {
		return "", false
	}
	return comment[len(prefix):], true
}
