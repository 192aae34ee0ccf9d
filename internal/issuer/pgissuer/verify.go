package pgissuer

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Verify logs in as the credential over a new connection to the database it
// was minted for (on the server where its role lives, should the instance
// have moved since), as the customer's app will, and checks who it is. A
// refused login is permanent (it does not work), but for one the primary
// accepts and the app URL's server, a standby of the primary's cluster,
// refused for not having replayed the role yet: that is transient (lag),
// as an unreachable server is. The credential's id names its role; the
// password is derived again, never read back.
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
	cfg, err := iss.appConfig(t, role, password)
	if err != nil {
		return err
	}
	err = connectAs(ctx, cfg, role)
	if isLoginFailure(err) {
		return iss.refused(ctx, t, role, password)
	}
	return classify("verify", err)
}

// appConfig is a connection as user to the database t names over the app
// URL, as the customer's app makes it.
func (iss *Issuer) appConfig(t target, user, password string) (*pgx.ConnConfig, error) {
	u := *t.server.appBase()
	u.Path = "/" + t.loc.Database
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, &issuer.Error{Op: "verify", Code: issuer.CodeRequest}
	}
	cfg.User, cfg.Password = user, password
	cfg.ConnectTimeout = iss.timeout
	cfg.RuntimeParams["application_name"] = "rekey-verify"
	return cfg, nil
}

// refused says what the app URL's server refusing role's login means. The
// app URL may reach a read replica (alone, or listed before the primary:
// pgx, as libpq, tries no further host once a password is refused), and a
// standby refuses a role it has not replayed yet, though the primary
// accepts it; a permanent login_failed there failed the rotation and
// counted towards the instance's quarantine.
//
// So the role logs in on the primary too, through the admin URL's hosts
// (the server its role was just read on): refused there as well, the
// credential does not work (permanent); accepted, the app URL's server is
// asked whether the refusal was lag (lagged).
// A login on the primary is never the verify's success: the customer's app
// logs in over the app URL, and would be refused as rekey was. Waiting
// here for the replica to replay would hold a worker for a lag with no
// bound (asynq's retry waits instead), and sending the login to whichever
// listed host is not in recovery would pass a credential the app's first
// host still refuses.
func (iss *Issuer) refused(ctx context.Context, t target, role, password string) error {
	err := iss.loginOnPrimary(ctx, t, role, password)
	switch {
	case err == nil:
		return iss.lagged(ctx, t, role, password)
	case isLoginFailure(err):
		return permanent("verify", CodeLoginFailed, "role %s could not log in to database %q", role, t.loc.Database)
	}
	return classify("verify", err)
}

// loginOnPrimary logs in as role through the admin URL, on a server not in
// recovery. Each host listed is tried in turn, since pgx gives up at the
// first that refuses the password (a standby listed first): nil when one
// not in recovery accepts the login; a refusal when every host answered
// with a refusal or its recovery; otherwise the error of a host that did
// neither, which may have been the primary. A host answers once for all
// its attempts (sslmode=prefer tries it with TLS, then without).
func (iss *Issuer) loginOnPrimary(ctx context.Context, t target, role, password string) error {
	cfg, err := pgx.ParseConfig(t.server.AdminURL.Reveal())
	if err != nil {
		return &issuer.Error{Op: "verify", Code: issuer.CodeRequest}
	}
	cfg.User, cfg.Password, cfg.Database = role, password, t.loc.Database
	cfg.ConnectTimeout = iss.timeout
	cfg.RuntimeParams["application_name"] = "rekey-verify"
	primaryOnly(&cfg.Config)
	var refusal error
	answered, unanswered := map[string]bool{}, map[string]error{}
	for _, c := range eachHost(cfg) {
		host := net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
		switch err := connectAs(ctx, c, role); {
		case err == nil:
			return nil
		case isLoginFailure(err):
			refusal, answered[host] = err, true
		case errors.Is(err, errInRecovery):
			answered[host] = true
		default:
			unanswered[host] = err
		}
	}
	for host, err := range unanswered {
		if !answered[host] {
			return err
		}
	}
	if refusal != nil {
		return refusal
	}
	return errInRecovery
}

// eachHost is cfg once for each host it lists, with no fallback.
func eachHost(cfg *pgx.ConnConfig) []*pgx.ConnConfig {
	hosts := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	out := make([]*pgx.ConnConfig, 0, len(hosts))
	for _, h := range hosts {
		c := cfg.Copy()
		c.Host, c.Port, c.TLSConfig, c.Fallbacks = h.Host, h.Port, h.TLSConfig, nil
		out = append(out, c)
	}
	return out
}

// connectAs connects with cfg and checks that the session is role's: the
// driver's error as it is, or a permanent login_failed for a session of
// another role.
func connectAs(ctx context.Context, cfg *pgx.ConnConfig, role string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	ctx, cancel := answerWithin(ctx, cfg)
	defer cancel()
	var session string
	if err := conn.QueryRow(ctx, "SELECT session_user::text").Scan(&session); err != nil {
		return err
	}
	if session != role {
		return permanent("verify", CodeLoginFailed, "a login as role %s ran as %s", role, session)
	}
	return nil
}

// answerWithin bounds a question to a server that let a login in by cfg's
// connect timeout, the issuer's: such a server answers a one-row question
// at once, and one that does not (a pooler with no server connection to
// give, a hung proxy) is waited for no longer than one that does not
// answer the connection, not until the task's own deadline.
func answerWithin(ctx context.Context, cfg *pgx.ConnConfig) (context.Context, context.CancelFunc) {
	if cfg.ConnectTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, cfg.ConnectTimeout)
}

// rotationOf finds the role where it lives (find) and reads the rotation id
// from its mark; it reports whether the role exists and is rekey's for the
// instance, and the target of the database the role was minted for.
func (iss *Issuer) rotationOf(ctx context.Context, t target, instanceID, role string) (string, target, bool, error) {
	at, comment, exists, err := iss.find(ctx, t, "verify", role)
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
