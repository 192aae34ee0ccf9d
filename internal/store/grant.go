package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

// grantKey is a STRING that remembers, for a day, which OAuth grant code
// registered an instance, so that a registration retried with the same
// code (its client timed out on the first) is answered as a repeat rather
// than spending the code again at Heroku, which refuses a code twice.
// grantClaimKey marks a code being exchanged now, so that two
// registrations with one code at once exchange it once (I6); it is a key
// of its own, so that a registration with another code (a mistaken or
// hostile one, whose exchange Heroku refuses) cannot make the instance
// forget the code that registered it.
//
// Neither holds the code: a mark byte and the code's keyed fingerprint
// (grantFingerprints), 9 bytes. With their expiry they are no part of an
// instance's memory at rest.
//
//	rekey:grant:<instance id>        '=' + fingerprint  once it registered the instance (grantMemory)
//	rekey:grant_claim:<instance id>  '?' + fingerprint  while a registration exchanges it (grantClaimTTL)
func grantKey(instanceID string) string { return keyPrefix + "grant:" + instanceID }

// grantClaimKey is the STRING that marks a grant code being exchanged for
// an instance (grantKey).
func grantClaimKey(instanceID string) string { return keyPrefix + "grant_claim:" + instanceID }

// Marks of grantKey's value.
const (
	grantExchanging = "?"
	grantRegistered = "="
)

// grantFingerprintLen is how many bytes of a grant's fingerprint grantKey
// keeps: a false match would take a new code for the one that registered
// the instance, once in 2^64 comparisons of one instance's codes.
const grantFingerprintLen = 8

// grantMemory is how long grantKey remembers the grant that registered an
// instance: a partner retries a registration within minutes (Heroku's
// codes expire after five), a day leaves room for one retried by hand.
const grantMemory = 24 * time.Hour

// grantClaimTTL is how long a registration may hold a grant's exchange
// before another with the same code takes it over: longer than an exchange
// and the store's retries after it take (heroku.DefaultTimeout, the
// registry's store retries), as long as the web process gives one
// registration.
const grantClaimTTL = 2 * time.Minute

// GrantClaim is what ClaimGrant found.
type GrantClaim int

const (
	// GrantClaimed: the caller exchanges the code now. It must call
	// RegisterGrant when the exchange succeeded, ReleaseGrant otherwise.
	GrantClaimed GrantClaim = iota
	// GrantAlreadyRegistered: the code registered the instance, which is
	// live and holds tokens: a registration without tokens (Register with
	// none) repeats it, and the code must not be exchanged again.
	GrantAlreadyRegistered
	// GrantBusy: another registration is exchanging the same code now; ask
	// again shortly.
	GrantBusy
)

// claimGrantScript decides whether a registration exchanges its grant.
//
// KEYS[1] -> rekey:grant:<id>
// KEYS[2] -> rekey:instance:<id>
// KEYS[3] -> rekey:oauth:<id>
// KEYS[4] -> rekey:grant_claim:<id>
// ARGV[1] the claim ('?' + the code's fingerprint under the first key),
// ARGV[2] its fingerprints under every key, one after the other, ARGV[3]
// their length, ARGV[4] the claim's ttl in ms.
// Returns 'registered' when this code registered the instance, which is
// live and holds tokens; 'busy' when this code is being exchanged; else
// 'claimed', having stored the claim (replacing another code's).
var claimGrantScript = redis.NewScript(`
local n = tonumber(ARGV[3])
local function mine(v)
  if not v then return false end
  local fp = string.sub(v, 2)
  for i = 1, #ARGV[2], n do
    if string.sub(ARGV[2], i, i + n - 1) == fp then return true end
  end
  return false
end
if mine(redis.call('GET', KEYS[1])) then
  local live = redis.call('EXISTS', KEYS[2]) == 1 and not redis.call('HGET', KEYS[2], 'deprovisioned_at')
  local held = redis.call('EXISTS', KEYS[3]) == 1 or redis.call('HGET', KEYS[2], 'oauth_refresh') or
    redis.call('HGET', KEYS[2], 'oauth_access')
  if live and held then return 'registered' end
end
if mine(redis.call('GET', KEYS[4])) then return 'busy' end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[4])
return 'claimed'
`)

// claimGrantKeys are the KEYS of claimGrantScript, one field per key, in order.
type claimGrantKeys struct {
	grant    string // KEYS[1] -> rekey:grant:<id>
	instance string // KEYS[2] -> rekey:instance:<id>
	oauth    string // KEYS[3] -> rekey:oauth:<id>
	claim    string // KEYS[4] -> rekey:grant_claim:<id>
}

func newClaimGrantKeys(id string) claimGrantKeys {
	return claimGrantKeys{grant: grantKey(id), instance: instanceKey(id), oauth: oauthKey(id), claim: grantClaimKey(id)}
}

func (k claimGrantKeys) list() []string { return []string{k.grant, k.instance, k.oauth, k.claim} }

// ClaimGrant tells a registration of instance id carrying OAuth grant
// code whether to exchange it (GrantClaim). It is atomic: of two
// registrations with one code at once, one claims it and the other finds
// it busy until the first registered the instance or released the code.
func (s *Store) ClaimGrant(ctx context.Context, id string, code secret.String) (GrantClaim, error) {
	fp, all := s.grantFingerprints(id, code)
	res, err := claimGrantScript.Run(ctx, s.rdb, newClaimGrantKeys(id).list(),
		grantExchanging+fp, all, grantFingerprintLen, grantClaimTTL.Milliseconds()).Text()
	if err != nil {
		return GrantClaimed, fmt.Errorf("claim oauth grant of %s: %w", id, err)
	}
	switch res {
	case "registered":
		return GrantAlreadyRegistered, nil
	case "busy":
		return GrantBusy, nil
	}
	return GrantClaimed, nil
}

// releaseGrantScript drops a claim whose exchange or registration failed.
//
// KEYS[1] -> rekey:grant_claim:<id>
// ARGV[1] the claim ClaimGrant stored.
// Returns 1 when it was dropped, 0 when the key holds something else.
var releaseGrantScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`)

// releaseGrantKeys are the KEYS of releaseGrantScript.
type releaseGrantKeys struct {
	claim string // KEYS[1] -> rekey:grant_claim:<id>
}

func (k releaseGrantKeys) list() []string { return []string{k.claim} }

// ReleaseGrant drops the claim ClaimGrant made for code when its exchange
// or the registration after it failed, so that a registration with the
// same code waiting for it goes on at once (and finds the code spent, or
// not, at Heroku). A claim another registration took over is left alone.
func (s *Store) ReleaseGrant(ctx context.Context, id string, code secret.String) error {
	fp, _ := s.grantFingerprints(id, code)
	err := releaseGrantScript.Run(ctx, s.rdb, releaseGrantKeys{claim: grantClaimKey(id)}.list(), grantExchanging+fp).Err()
	if err != nil {
		return fmt.Errorf("release oauth grant of %s: %w", id, err)
	}
	return nil
}

// grantFingerprints are the keyed fingerprints of instance id's grant
// code (seal.Sealer.Fingerprints, grantFingerprintLen bytes each): fp
// under the first key, which grantKey keeps, and all, under every key
// held, one after the other, which a stored one is compared with. The
// instance id is part of what is fingerprinted, so one code names one
// instance's registration.
func (s *Store) grantFingerprints(id string, code secret.String) (fp, all string) {
	data := []byte("oauth_grant\x00" + id + "\x00" + code.Reveal())
	var out []byte
	for _, f := range s.sealer.Fingerprints(data) {
		out = append(out, f[:grantFingerprintLen]...)
	}
	return string(out[:grantFingerprintLen]), string(out)
}

// grantTokensKey is a STRING: the tokens that a registration refused
// because a DELETE of its instance came while it was under way
// (ErrDeletedSince) had exchanged its grant code for, sealed as the
// instance's own are, after the code's fingerprint and the expiry in ms,
// kept as long as a claim lasts (grantClaimTTL). Heroku exchanges a code
// once: the same PUT sent again after the DELETE, which waited for the
// refused one's claim, registers with these rather than exchange the spent
// code, which Heroku would refuse.
//
//	rekey:grant_tokens:<instance id>
func grantTokensKey(instanceID string) string { return keyPrefix + "grant_tokens:" + instanceID }

// KeepGrantTokens keeps the tokens tok that grant code of instance id was
// exchanged for, for a registration with the same code to take
// (TakeGrantTokens) within grantClaimTTL.
func (s *Store) KeepGrantTokens(ctx context.Context, id string, code secret.String, tok heroku.Token) error {
	fp, _ := s.grantFingerprints(id, code)
	sealed, err := s.sealTokens(id, tok.AccessToken, tok.RefreshToken)
	if err != nil {
		return err
	}
	expires := int64(0)
	if !tok.ExpiresAt.IsZero() {
		expires = tok.ExpiresAt.UnixMilli()
	}
	v := fp + strconv.FormatInt(expires, 10) + ":" + sealed
	if err := s.rdb.Set(ctx, grantTokensKey(id), v, grantClaimTTL).Err(); err != nil {
		return fmt.Errorf("keep the tokens of the oauth grant of %s: %w", id, err)
	}
	return nil
}

// TakeGrantTokens returns, and forgets, the tokens that grant code of
// instance id was exchanged for by a registration refused since
// (KeepGrantTokens); ok is false when none are kept for that code.
func (s *Store) TakeGrantTokens(ctx context.Context, id string, code secret.String) (tok heroku.Token, ok bool, err error) {
	v, err := s.rdb.Get(ctx, grantTokensKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return tok, false, nil
	}
	if err != nil {
		return tok, false, fmt.Errorf("read the tokens of the oauth grant of %s: %w", id, err)
	}
	// Another code's stay, so that a PUT with a mistaken or hostile code
	// cannot make the right one lose them. Only a registration holding the
	// code's claim asks (ClaimGrant), so two never take the same tokens.
	_, all := s.grantFingerprints(id, code)
	if len(v) < grantFingerprintLen || !slices.Contains(chunks(all, grantFingerprintLen), v[:grantFingerprintLen]) {
		return tok, false, nil
	}
	if err := s.rdb.Del(ctx, grantTokensKey(id)).Err(); err != nil {
		return tok, false, fmt.Errorf("take the tokens of the oauth grant of %s: %w", id, err)
	}
	expires, sealed, _ := strings.Cut(v[grantFingerprintLen:], ":")
	if tok.AccessToken, tok.RefreshToken, err = s.openTokens(id, sealed); err != nil {
		return heroku.Token{}, false, fmt.Errorf("open the tokens of the oauth grant of %s: %w", id, err)
	}
	if ms, _ := strconv.ParseInt(expires, 10, 64); ms > 0 {
		tok.ExpiresAt = time.UnixMilli(ms).UTC()
	}
	return tok, true, nil
}

// chunks cuts s into pieces of n bytes.
func chunks(s string, n int) []string {
	var out []string
	for len(s) >= n {
		out, s = append(out, s[:n]), s[n:]
	}
	return out
}
