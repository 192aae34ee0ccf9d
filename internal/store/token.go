package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

var _ heroku.TokenStore = (*Store)(nil)

// oauthKey is a STRING holding an instance's OAuth access and refresh
// tokens as ONE sealed value (sealTokens), sealed with the associated data
// "<key>#". Apart from the instance hash because a sealed token is longer
// than Redis keeps in a listpack hash (hash-max-listpack-value, 64 bytes):
// in the hash, two of them turned the whole hash into a hashtable three
// times its size (docs/benchmarks.md, "Redis memory"). The access token's
// expiry, which is no secret, stays in the instance hash
// (oauth_expires_at), so TokenExpiries reads it without opening anything.
//
// The value is sealed as bytes (seal.Sealer.SealBinary), a quarter
// shorter than the text form; a value an earlier version sealed as text
// opens the same, until the next write of the tokens replaces it.
//
// Versions before it kept the tokens in the instance hash, sealed apart
// (fields legacyTokenFields): LoadToken reads them there and moves them
// here; any write of the tokens drops them.
//
//	rekey:oauth:<instance id>  sealed(access NUL refresh)
func oauthKey(instanceID string) string { return keyPrefix + "oauth:" + instanceID }

// legacyTokenFields are the instance hash's fields where versions before
// oauthKey kept the sealed access and refresh tokens.
var legacyTokenFields = [2]string{"oauth_access", "oauth_refresh"}

// tokenSep separates the access token from the refresh token in the sealed
// value: neither holds a NUL.
const tokenSep = "\x00"

// sealTokens seals an instance's access and refresh tokens together.
func (s *Store) sealTokens(instanceID string, access, refresh secret.String) (string, error) {
	if access.IsZero() && refresh.IsZero() {
		return "", nil
	}
	v := secret.New(access.Reveal() + tokenSep + refresh.Reveal())
	sealed, err := s.sealer.SealBinary(v, oauthKey(instanceID)+"#")
	if err != nil {
		return "", fmt.Errorf("seal tokens: %w", err)
	}
	return sealed, nil
}

// openTokens opens what sealTokens sealed.
func (s *Store) openTokens(instanceID, sealed string) (access, refresh secret.String, err error) {
	v, err := s.openField(oauthKey(instanceID), "", sealed)
	if err != nil {
		return access, refresh, err
	}
	a, r, _ := strings.Cut(v.Reveal(), tokenSep)
	return secret.New(a), secret.New(r), nil
}

// LoadToken returns an instance's OAuth tokens, opened, or an error wrapping
// heroku.ErrNoToken. It implements heroku.TokenStore.
func (s *Store) LoadToken(ctx context.Context, addonID string) (heroku.Token, error) {
	t, _, err := s.loadToken(ctx, addonID)
	return t, err
}

// loadToken is LoadToken, and the sealed value it opened ("" when the
// tokens were read from the legacy fields and could not be moved).
func (s *Store) loadToken(ctx context.Context, id string) (heroku.Token, string, error) {
	pipe := s.rdb.Pipeline()
	sealedCmd := pipe.Get(ctx, oauthKey(id))
	vals := pipe.HMGet(ctx, instanceKey(id), legacyTokenFields[0], legacyTokenFields[1], "oauth_expires_at")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return heroku.Token{}, "", fmt.Errorf("load token: %w", err)
	}
	expires, _ := vals.Val()[2].(string)
	t := heroku.Token{ExpiresAt: fromMS(expires)}
	sealed := sealedCmd.Val()
	if sealed == "" {
		return s.loadLegacyToken(ctx, id, t, vals.Val())
	}
	var err error
	// A token that cannot be opened stays so until an operator acts (a
	// dropped encryption key): heroku.ErrTokenUnreadable makes it permanent.
	if t.AccessToken, t.RefreshToken, err = s.openTokens(id, sealed); err != nil {
		return heroku.Token{}, "", fmt.Errorf("%w: %w", heroku.ErrTokenUnreadable, err)
	}
	return t, sealed, nil
}

// loadLegacyToken opens tokens an earlier version kept in the instance
// hash and moves them to oauthKey, unless a writer replaced them meanwhile.
func (s *Store) loadLegacyToken(ctx context.Context, id string, t heroku.Token, vals []any) (heroku.Token, string, error) {
	access, _ := vals[0].(string)
	refresh, _ := vals[1].(string)
	if refresh == "" && access == "" {
		return heroku.Token{}, "", fmt.Errorf("load token of %s: %w", id, heroku.ErrNoToken)
	}
	key := instanceKey(id)
	var err error
	if t.AccessToken, err = s.openField(key, legacyTokenFields[0], access); err != nil {
		return heroku.Token{}, "", fmt.Errorf("%w: %w", heroku.ErrTokenUnreadable, err)
	}
	if t.RefreshToken, err = s.openField(key, legacyTokenFields[1], refresh); err != nil {
		return heroku.Token{}, "", fmt.Errorf("%w: %w", heroku.ErrTokenUnreadable, err)
	}
	sealed, err := s.sealTokens(id, t.AccessToken, t.RefreshToken)
	if err != nil {
		return heroku.Token{}, "", err
	}
	k := newSaveTokenKeys(id)
	moved, err := moveTokenScript.Run(ctx, s.rdb, k.list(), access, refresh, sealed).Int()
	if err != nil {
		return heroku.Token{}, "", scriptError("move token of "+id, err)
	}
	if moved == 0 {
		sealed = ""
	}
	return t, sealed, nil
}

// moveTokenScript moves an instance's tokens from the legacy hash fields
// to oauthKey, if the fields still hold what was read and oauthKey was not
// written meanwhile.
//
// KEYS: saveTokenKeys. ARGV: sealed access and refresh tokens read from the
// legacy fields, the tokens sealed for oauthKey.
// Returns 1 when moved, 0 otherwise.
var moveTokenScript = redis.NewScript(`
local old = redis.call('HMGET', KEYS[1], 'oauth_access', 'oauth_refresh')
if (old[1] or '') ~= ARGV[1] or (old[2] or '') ~= ARGV[2] or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[1], 'oauth_access', 'oauth_refresh')
return 1
`)

// saveTokenAttempts is how many times SaveToken reads the stored refresh
// token again when a concurrent save replaced it meanwhile.
const saveTokenAttempts = 3

// SaveToken seals and stores an instance's OAuth tokens. It implements
// heroku.TokenStore. It does not create an instance that does not exist. A
// token without a refresh token keeps the stored one (Heroku reuses it).
func (s *Store) SaveToken(ctx context.Context, addonID string, t heroku.Token) error {
	expires := strconv.FormatInt(t.ExpiresAt.UnixMilli(), 10)
	if t.ExpiresAt.IsZero() {
		expires = "0"
	}
	k := newSaveTokenKeys(addonID)
	for range saveTokenAttempts {
		refresh, read := t.RefreshToken, ""
		if refresh.IsZero() {
			held, sealed, err := s.loadToken(ctx, addonID)
			if err != nil && !errors.Is(err, heroku.ErrNoToken) {
				return err
			}
			refresh, read = held.RefreshToken, sealed
		}
		sealed, err := s.sealTokens(addonID, t.AccessToken, refresh)
		if err != nil {
			return err
		}
		res, err := saveTokenScript.Run(ctx, s.rdb, k.list(), sealed, expires, boolArg(t.RefreshToken.IsZero()), read).Text()
		if err != nil {
			return scriptError("save token of "+addonID, err)
		}
		if res == "ok" {
			return nil
		}
	}
	return fmt.Errorf("save token of %s: the stored token kept changing", addonID)
}

// SaveRefreshed stores t, the tokens a refresh of old gave, unless the
// stored tokens are no longer old's (a registration stored a new
// authorization while the refresh was under way): then it keeps them and
// returns them, for the caller to use instead. It implements
// heroku.RefreshSaver.
func (s *Store) SaveRefreshed(ctx context.Context, addonID string, old, t heroku.Token) (heroku.Token, error) {
	expires := strconv.FormatInt(t.ExpiresAt.UnixMilli(), 10)
	if t.ExpiresAt.IsZero() {
		expires = "0"
	}
	k := newSaveTokenKeys(addonID)
	for range saveTokenAttempts {
		held, read, err := s.loadToken(ctx, addonID)
		switch {
		case errors.Is(err, heroku.ErrNoToken):
			// Removed during the refresh (the add-on deprovisioned): the
			// tokens are kept only while the instance holds some.
			return heroku.Token{}, fmt.Errorf("save token of %s: %w: removed during the refresh", addonID, err)
		case err != nil:
			return heroku.Token{}, err
		case held.RefreshToken.Reveal() != old.RefreshToken.Reveal():
			return held, nil
		}
		refresh := t.RefreshToken
		if refresh.IsZero() {
			refresh = old.RefreshToken
		}
		sealed, err := s.sealTokens(addonID, t.AccessToken, refresh)
		if err != nil {
			return heroku.Token{}, err
		}
		// "1": stored only if the value read is still there.
		res, err := saveTokenScript.Run(ctx, s.rdb, k.list(), sealed, expires, "1", read).Text()
		if err != nil {
			return heroku.Token{}, scriptError("save token of "+addonID, err)
		}
		if res == "ok" {
			t.RefreshToken = refresh
			return t, nil
		}
	}
	return heroku.Token{}, fmt.Errorf("save token of %s: the stored token kept changing", addonID)
}

// saveTokenScript replaces an existing instance's sealed OAuth tokens and
// drops the legacy hash fields.
//
// KEYS: saveTokenKeys. ARGV: sealed tokens, expires_at ms, kept ("1": the
// refresh token is the stored one, read as ARGV[4]), the sealed value read
// ("" when none).
// Returns "ok", or "changed" when the stored value is no longer the one
// read; error "not_found" when the instance is unknown.
var saveTokenScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('not_found') end
if ARGV[3] == '1' and (redis.call('GET', KEYS[2]) or '') ~= ARGV[4] then return 'changed' end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'oauth_expires_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'oauth_access', 'oauth_refresh')
return 'ok'
`)

// saveTokenKeys are the KEYS of saveTokenScript and moveTokenScript.
type saveTokenKeys struct {
	instance string // KEYS[1] -> rekey:instance:<id>
	oauth    string // KEYS[2] -> rekey:oauth:<id>
}

func newSaveTokenKeys(id string) saveTokenKeys {
	return saveTokenKeys{instance: instanceKey(id), oauth: oauthKey(id)}
}

func (k saveTokenKeys) list() []string { return []string{k.instance, k.oauth} }

// sealField seals v with the associated data "<key>#<field>"; a value
// that is a whole STRING key has the field "".
func (s *Store) sealField(key, field string, v secret.String) (string, error) {
	if v.IsZero() {
		return "", nil
	}
	sealed, err := s.sealer.Seal(v, key+"#"+field)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", field, err)
	}
	return sealed, nil
}

func (s *Store) openField(key, field, sealed string) (secret.String, error) {
	if sealed == "" {
		return secret.String{}, nil
	}
	v, err := s.sealer.Open(sealed, key+"#"+field)
	if err != nil {
		return secret.String{}, fmt.Errorf("open %s of %s: %w", field, key, err)
	}
	return v, nil
}
