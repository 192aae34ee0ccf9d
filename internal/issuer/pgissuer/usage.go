package pgissuer

import (
	"context"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// Usage answers from pg_stat_activity of the server where the role lives
// (the instance's, or another configured one it was minted on before the
// instance moved; find): a role with a session now was used
// now, by the newest session's client address or application name. With
// no session, the last time this process saw one (zero when it never did,
// when that is longer ago than Params.UsageMemory, or after a restart: only
// live sessions are evidence PostgreSQL keeps).
// A role that does not exist was never used.
func (iss *Issuer) Usage(ctx context.Context, instanceID, credentialID string) (issuer.Usage, error) {
	if credentialID == "" {
		return issuer.Usage{}, issuer.ErrInvalid
	}
	t, err := iss.resolve(ctx, "usage", instanceID)
	if err != nil {
		return issuer.Usage{}, err
	}
	at, _, exists, err := iss.find(ctx, t, "usage", credentialID)
	switch {
	case err != nil:
		return issuer.Usage{}, classify("usage", err)
	case !exists:
		return iss.seen(credentialID), nil
	}
	var sessions int
	var by string
	err = at.pool.QueryRow(ctx, `SELECT count(*),
		coalesce((SELECT coalesce(host(client_addr), '') || CASE WHEN application_name <> '' THEN ' ' || application_name ELSE '' END
			FROM pg_stat_activity WHERE usename = $1 ORDER BY backend_start DESC LIMIT 1), '')
		FROM pg_stat_activity WHERE usename = $1`, credentialID).Scan(&sessions, &by)
	if err != nil {
		return issuer.Usage{}, explain(ctx, at.pool, "usage", err)
	}
	if sessions == 0 {
		return iss.seen(credentialID), nil
	}
	u := issuer.Usage{LastUsedAt: iss.now().UTC(), LastUsedBy: issuer.CleanUsedBy(truncate(by, 100))}
	iss.remember(credentialID, u)
	return u, nil
}

// remember keeps u as role's last usage, and forgets every role seen
// longer ago than the memory, at most every half of it: a role revoked by
// another process, or whose revocation went dead, is never revoked here,
// and a day of waves would otherwise keep each for good.
func (iss *Issuer) remember(role string, u issuer.Usage) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.lastSeen[role] = u
	now := u.LastUsedAt
	if now.Sub(iss.swept) < iss.memory/2 && !now.Before(iss.swept) {
		return
	}
	iss.swept = now
	for r, seen := range iss.lastSeen {
		if now.Sub(seen.LastUsedAt) >= iss.memory {
			delete(iss.lastSeen, r)
		}
	}
}

// seen is role's usage as last seen within the memory; zero otherwise.
func (iss *Issuer) seen(role string) issuer.Usage {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	u, ok := iss.lastSeen[role]
	if ok && iss.now().Sub(u.LastUsedAt) >= iss.memory {
		delete(iss.lastSeen, role)
		return issuer.Usage{}
	}
	return u
}

func (iss *Issuer) forget(role string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	delete(iss.lastSeen, role)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
