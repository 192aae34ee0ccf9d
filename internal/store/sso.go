package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds the dashboard's short-lived marks (README "Customer
// dashboard"): Heroku single sign-on tokens already spent, so a sign-in
// form is accepted once; sessions signed out, so a copied session cookie
// stops working at logout; and a user's last sign-out of an add-on, so
// that the forms of their earlier sign-ins stop acting too. Each key
// expires on its own when the token or the sessions would have expired
// anyway. Tokens are stored as
// hashes, never as sent.

// ssoUsedKey is a STRING marking one SSO token as spent, named by the
// SHA-256 of the token: "1" for a token that signed in, "covered" for a
// resource token a user-scoped sign-in spent with its own token.
func ssoUsedKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return keyPrefix + "sso_used:" + hex.EncodeToString(sum[:])
}

// sessionEndedKey is a STRING ("1") marking one dashboard session, named
// by its nonce, as signed out.
func sessionEndedKey(nonce string) string { return keyPrefix + "session_ended:" + nonce }

// signInsEndedKey is a STRING: when (Unix ms) the Heroku user who (a keyed
// digest of the user id, never the id) last signed out of instanceID's
// dashboard. Every sign-in of theirs to it until then has ended with it.
func signInsEndedKey(instanceID, who string) string {
	return keyPrefix + "sign_ins_ended:" + instanceID + ":" + who
}

// spendSSOKeys are the keys of spendSSOScript.
type spendSSOKeys struct {
	token string // KEYS[1]: the mark of the token that signed in
	cover string // KEYS[2]: the mark of the other token the sign-in covers, or KEYS[1] again
}

func (k spendSSOKeys) list() []string { return []string{k.token, k.cover} }

// spendSSOScript spends a sign-in's tokens at once.
//
//	KEYS    -> spendSSOKeys: rekey:sso_used:<sha256 of a token>, twice
//	ARGV[1] -> expiry in milliseconds
//
// A token that signed in is spent whatever its mark. A user-scoped sign-in
// (KEYS[2] another key) is refused too when its resource token signed in
// on its own: that was this very form, stripped of its user-scoped token,
// or one indistinguishable from it. A resource token only covered by
// another user-scoped sign-in does not refuse one: the resource token
// names the add-on and the second, not the user, so two people of one team
// signing in within the same second share it, each with a token of their
// own.
//
// Returns 0, and changes nothing, when the sign-in is refused; otherwise
// marks both keys spent and returns 1.
var spendSSOScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
if KEYS[2] == KEYS[1] then
  redis.call("SET", KEYS[1], "1", "PX", ARGV[1])
  return 1
end
local cover = redis.call("GET", KEYS[2])
if cover and cover ~= "covered" then return 0 end
redis.call("SET", KEYS[1], "1", "PX", ARGV[1])
redis.call("SET", KEYS[2], "covered", "PX", ARGV[1])
return 1`)

// SpendSSOToken marks token spent for ttl, together with cover, another
// token of the same sign-in (a user-scoped sign-in also spends its
// resource token, so the form cannot be replayed without the user-scoped
// one); cover may be empty. It reports false, and marks nothing, when token
// was spent before, or cover signed in on its own (spendSSOScript).
func (s *Store) SpendSSOToken(ctx context.Context, token, cover string, ttl time.Duration) (bool, error) {
	k := spendSSOKeys{token: ssoUsedKey(token), cover: ssoUsedKey(token)}
	if cover != "" {
		k.cover = ssoUsedKey(cover)
	}
	n, err := spendSSOScript.Run(ctx, s.rdb, k.list(), max(ttl.Milliseconds(), 1)).Int()
	if err != nil {
		return false, fmt.Errorf("spend sso token: %w", err)
	}
	return n == 1, nil
}

// EndSession marks the dashboard session with nonce signed out for ttl,
// the time it had left.
func (s *Store) EndSession(ctx context.Context, nonce string, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, sessionEndedKey(nonce), "1", max(ttl, time.Millisecond)).Err(); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// SessionEnded reports whether the session with nonce was signed out.
func (s *Store) SessionEnded(ctx context.Context, nonce string) (bool, error) {
	n, err := s.rdb.Exists(ctx, sessionEndedKey(nonce)).Result()
	if err != nil {
		return false, fmt.Errorf("read session: %w", err)
	}
	return n == 1, nil
}

// EndSignIns marks every dashboard sign-in of who (a keyed digest of a
// Heroku user) to instanceID made until at as ended, for ttl, the longest
// such a sign-in lasts: a sign-out ends the user's earlier sign-ins to the
// add-on too, whose pages may still be open in other tabs.
func (s *Store) EndSignIns(ctx context.Context, instanceID, who string, at time.Time, ttl time.Duration) error {
	err := s.rdb.Set(ctx, signInsEndedKey(instanceID, who), strconv.FormatInt(at.UnixMilli(), 10), max(ttl, time.Millisecond)).Err()
	if err != nil {
		return fmt.Errorf("end sign-ins: %w", err)
	}
	return nil
}

// SignInsEnded returns when who last signed out of instanceID's dashboard
// (EndSignIns), and false when they did not within the mark's life.
func (s *Store) SignInsEnded(ctx context.Context, instanceID, who string) (time.Time, bool, error) {
	v, err := s.rdb.Get(ctx, signInsEndedKey(instanceID, who)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read sign-ins: %w", err)
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		// Written by something else than EndSignIns: read as a sign-out
		// after every sign-in (the safe side).
		return time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), true, nil
	}
	return time.UnixMilli(ms), true, nil
}
