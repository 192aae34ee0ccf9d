package pgissuer

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// AdminSettings reads, once on each configured server, the defaults of the
// admin session that would fail rekey's statements (explain names them in
// the failure too), and returns a sentence for each, prefixed with its
// server's id, saying what it fails and what undoes it: a read-only
// default, a role to act as, and a statement_timeout, lock_timeout or
// idle_in_transaction_session_timeout shorter than Params.LockWait, the
// longest a mint or revoke waits for a role's lock. A server that does
// not answer within the connect timeout is left out: its rotations will
// say so. A worker logs them at its start.
func (iss *Issuer) AdminSettings(ctx context.Context) []string {
	var out []string
	for _, id := range iss.Servers() {
		c, cancel := context.WithTimeout(ctx, iss.timeout)
		out = append(out, iss.adminSettings(c, id)...)
		cancel()
	}
	return out
}

// adminSettings is AdminSettings of server id.
func (iss *Issuer) adminSettings(ctx context.Context, id string) []string {
	pool := iss.pools[id]
	rows, err := pool.Query(ctx, `SELECT name, setting FROM pg_catalog.pg_settings WHERE name = ANY($1)`,
		[]string{"default_transaction_read_only", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"})
	if err != nil {
		return nil
	}
	var risky []string
	for rows.Next() {
		var name, value string
		if rows.Scan(&name, &value) == nil && iss.risky(name, value) {
			risky = append(risky, name)
		}
	}
	if rows.Err() != nil {
		return nil
	}
	var out []string
	for _, name := range append(risky, "role") {
		s, err := readSetting(ctx, pool, name)
		if err != nil {
			return nil
		}
		if text := s.atStart(iss.lockWait); text != "" {
			out = append(out, "server "+id+": "+text)
		}
	}
	return out
}

// risky reports whether a setting's pg_settings value (milliseconds, for
// the timeouts) fails rekey's statements.
func (iss *Issuer) risky(name, value string) bool {
	if name == "default_transaction_read_only" {
		return value == "on"
	}
	ms, err := strconv.ParseInt(value, 10, 64)
	return err == nil && ms > 0 && time.Duration(ms)*time.Millisecond < iss.lockWait
}

// atStart is the warning for a setting the admin session starts with, ""
// for none.
func (s setting) atStart(lockWait time.Duration) string {
	where, fix := s.undo()
	switch s.name {
	case "default_transaction_read_only":
		return fmt.Sprintf("rekey's admin role runs read-only (default_transaction_read_only is on %s): "+
			"every mint and revocation fails; %s", where, fix)
	case "statement_timeout":
		return fmt.Sprintf("statement_timeout is %s %s: a mint or revocation that waits longer for another's "+
			"lock of the role (up to %s) fails; %s", s.value, where, lockWait, fix)
	case "lock_timeout":
		return fmt.Sprintf("lock_timeout is %s %s: a mint whose CREATE ROLE waits longer for the catalog fails; %s",
			s.value, where, fix)
	case "idle_in_transaction_session_timeout":
		return fmt.Sprintf("idle_in_transaction_session_timeout is %s %s: a session that waits longer between two "+
			"statements of a mint's or revocation's transaction is ended, failing it; %s", s.value, where, fix)
	case "role":
		if s.current == s.session {
			return ""
		}
		return fmt.Sprintf("rekey's admin role %s acts as role %s (role is set to %s %s): its statements run "+
			"with that role's privileges, and a mint or revocation it may not do fails; %s",
			sanitize(s.session), sanitize(s.current), sanitize(s.current), where, fix)
	}
	return ""
}
