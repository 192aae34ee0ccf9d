package pgissuer

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Revoke locks the role out (NOLOGIN), ends its sessions, hands what it
// owns in the database it was minted for to the owner role it acted as,
// drops its remaining privileges and drops it. The role is looked for on
// the instance's server and, when it is not there (the instance moved since
// it was minted), on every other configured server: only a role that no
// server has is revoked without more ado, and a server that cannot answer
// fails the revocation (it is retried). A role rekey did not mint for this
// instance is never touched (a permanent error naming it).
func (iss *Issuer) Revoke(ctx context.Context, instanceID, credentialID string) error {
	if credentialID == "" {
		return issuer.ErrInvalid
	}
	t, err := iss.resolve(ctx, "revoke", instanceID)
	if err != nil {
		return err
	}
	found, err := iss.revokeOn(ctx, t, instanceID, credentialID)
	if err != nil || found {
		return err
	}
	for _, id := range iss.Servers() {
		if id == t.loc.Server {
			continue
		}
		if found, err := iss.revokeOn(ctx, t.on(iss, id), instanceID, credentialID); err != nil || found {
			return err
		}
	}
	return nil
}

// revokeOn revokes the role on t's server, if it is there, and reports
// whether it was.
func (iss *Issuer) revokeOn(ctx context.Context, t target, instanceID, role string) (bool, error) {
	found := false
	err := locked(ctx, t, "revoke", role, func(conn *pgxpool.Conn) error {
		comment, exists, err := roleComment(ctx, conn, role)
		switch {
		case err != nil:
			return classify("revoke", err)
		case !exists:
			return nil
		}
		found = true
		m, ok := parseMark(comment, instanceID)
		if !ok || iss.derive.roleName(instanceID, m.rotation) != role {
			return permanent("revoke", CodeNotRekeys, "role %s was not minted by rekey for instance %s: rekey leaves it alone", role, instanceID)
		}
		return iss.dropRole(ctx, conn, m.at(t), role)
	})
	return found, err
}

// dropRole runs the revocation's statements; each is safe to run again.
func (iss *Issuer) dropRole(ctx context.Context, conn *pgxpool.Conn, t target, role string) error {
	r := sanitize(role)
	if _, err := conn.Exec(ctx, "ALTER ROLE "+r+" NOLOGIN"); err != nil {
		return classify("revoke", err)
	}
	// Ending the role's sessions and handing over what it owns take the
	// role's privileges, which an admin that is no superuser (CREATEROLE)
	// lacks: it grants the role to itself, and DROP ROLE ends that too.
	if _, err := conn.Exec(ctx, "GRANT "+r+" TO CURRENT_USER"); err != nil {
		return classify("revoke", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role); err != nil {
		return classify("revoke", err)
	}
	// A database dropped since the role was minted holds nothing of it.
	var dbExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", t.loc.Database).Scan(&dbExists); err != nil {
		return classify("revoke", err)
	}
	if dbExists {
		if err := iss.reassign(ctx, t, r); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+r); err != nil {
		return classify("revoke", err)
	}
	iss.forget(role)
	return nil
}

// reassign runs REASSIGN OWNED and DROP OWNED in the database the role was
// minted for (t's), where its objects and grants live; they act on one
// database only.
func (iss *Issuer) reassign(ctx context.Context, t target, quotedRole string) error {
	cfg, err := pgx.ParseConfig(t.server.AdminURL.Reveal())
	if err != nil {
		return &issuer.Error{Op: "revoke", Code: issuer.CodeRequest}
	}
	cfg.Database = t.loc.Database
	cfg.ConnectTimeout = iss.timeout
	cfg.RuntimeParams["application_name"] = "rekey"
	// The owner role owns the database and may give it defaults (ALTER
	// DATABASE ... SET); settings sent at connection win over them, so none
	// makes this session read-only, short-lived or another role.
	for name, value := range map[string]string{"role": "none", "default_transaction_read_only": "off",
		"statement_timeout": "0", "lock_timeout": "0", "idle_in_transaction_session_timeout": "0"} {
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
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return classify("revoke", err)
		}
	}
	return nil
}
