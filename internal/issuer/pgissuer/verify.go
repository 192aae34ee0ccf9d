package pgissuer

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Verify logs in as the credential over a new connection to the database it
// was minted for (on the server where its role lives, should the instance
// have moved since), as the customer's app will, and checks who it is. A refused
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
	rotationID, at, ok, err := iss.rotationOf(ctx, t, instanceID, credentialID)
	switch {
	case err != nil:
		return classify("verify", err)
	case !ok:
		return permanent("verify", CodeLoginFailed, "role %s does not exist or was not minted by rekey for instance %s", credentialID, instanceID)
	}
	return iss.login(ctx, at, credentialID, iss.derive.password(instanceID, rotationID))
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

// rotationOf finds the role where it lives (find) and reads the rotation id
// from its mark; it reports whether the role exists and is rekey's for the
// instance, and the target of the database the role was minted for.
func (iss *Issuer) rotationOf(ctx context.Context, t target, instanceID, role string) (string, target, bool, error) {
	at, comment, exists, err := iss.find(ctx, t, role)
	if err != nil || !exists {
		return "", target{}, false, err
	}
	m, ok := parseMark(comment, instanceID)
	if !ok || iss.derive.roleName(instanceID, m.rotation) != role {
		return "", target{}, false, nil
	}
	return m.rotation, m.at(at), true, nil
}

// mark is what a role's comment says (roleMark).
type mark struct {
	rotation string
	// located says the comment records where the role was minted: roles
	// minted before rekey recorded it have no server, database or owner.
	located                 bool
	server, database, owner string
}

// at is t with the database and owner role the mark records, when it
// records them; t's server stays, since the role lives where it was found.
func (m mark) at(t target) target {
	if m.located {
		t.loc.Database, t.loc.Owner = m.database, m.owner
	}
	return t
}

// parseMark reads an instance's mark: "rekey instance=<id> rotation=<id>",
// then, from roles minted since rekey records their location, " server=<id>
// database=<quoted> owner=<quoted>". A comment whose tail is not exactly
// that reads as an earlier mark, the whole tail the rotation id; callers
// check the rotation against the role's name either way.
func parseMark(comment, instanceID string) (mark, bool) {
	prefix := instanceMark(instanceID) + "rotation="
	rest, ok := strings.CutPrefix(comment, prefix)
	if !ok || rest == "" {
		return mark{}, false
	}
	if rotation, loc, found := strings.Cut(rest, " server="); found && rotation != "" {
		if m, ok := parseLocation(loc); ok {
			m.rotation = rotation
			return m, true
		}
	}
	return mark{rotation: rest}, true
}

// parseLocation reads `<server> database="<name>" owner="<name>"`.
func parseLocation(s string) (mark, bool) {
	server, rest, ok := strings.Cut(s, " database=")
	if !ok || !serverIDPattern.MatchString(server) {
		return mark{}, false
	}
	database, rest, ok := quoted(rest)
	if !ok {
		return mark{}, false
	}
	rest, ok = strings.CutPrefix(rest, " owner=")
	if !ok {
		return mark{}, false
	}
	owner, rest, ok := quoted(rest)
	if !ok || rest != "" || database == "" || owner == "" {
		return mark{}, false
	}
	return mark{located: true, server: server, database: database, owner: owner}, true
}

// quoted reads the Go-quoted string s starts with and returns the rest.
func quoted(s string) (string, string, bool) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	v, err := strconv.Unquote(q)
	return v, s[len(q):], err == nil
}
