package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rekeyhq/rekey/internal/heroku"
)

// ErrTokenRequired means a V3 instance would be stored without OAuth
// tokens, so it could never be rotated: its first registration (or its
// registration again after a deprovisioning) must carry them.
var ErrTokenRequired = errors.New("a v3 instance needs oauth tokens")

// registerScript stores a registration and the instance's sealed OAuth
// tokens in one step: either both are stored, or neither (README.md,
// "HTTP API"). It runs putInstanceLua unchanged, as a function, and
// writes the tokens only when that succeeded; the token write goes to the
// same hash, so it cannot fail once the registration did not.
//
// KEYS: putInstanceKeys (instance.go), as for putInstanceScript.
// ARGV: those of putInstanceScript, then four more, read from the end so
// that putInstanceScript may grow: token required ("1": refuse when no
// token is given and none is held by a live instance), sealed access
// token, sealed refresh token, expires_at ms. Empty sealed tokens mean
// "no tokens in this request".
// Returns what putInstanceScript returns; error "token_required" when a
// token is required and missing, or putInstanceScript's errors.
var registerScript = eventScript(luaSchedule, luaRetention, `
local n = #ARGV
local need, access, refresh, expires = ARGV[n-3], ARGV[n-2], ARGV[n-1], ARGV[n]
if need == '1' and access == '' and refresh == '' then
  local live = redis.call('EXISTS', KEYS[1]) == 1 and get(KEYS[1], 'deprovisioned_at') == ''
  local held = get(KEYS[1], 'oauth_refresh') ~= '' or get(KEYS[1], 'oauth_access') ~= ''
  if not (live and held) then return redis.error_reply('token_required') end
end
local function put_instance()
`+putInstanceLua+`
end
local res = put_instance()
if type(res) == 'table' and res.err then return res end
if access ~= '' or refresh ~= '' then
  redis.call('HSET', KEYS[1], 'oauth_access', access, 'oauth_expires_at', expires)
  if refresh ~= '' then redis.call('HSET', KEYS[1], 'oauth_refresh', refresh) end
end
return res
`)

// Register registers or updates an instance and stores its OAuth tokens
// (tok, when not nil) in one atomic step: a failure stores neither. A V3
// registration without tokens is refused with ErrTokenRequired unless the
// instance is live and already holds tokens (an update may omit them).
func (s *Store) Register(ctx context.Context, r Registration, tok *heroku.Token) error {
	if err := r.Validate(); err != nil {
		return err
	}
	keys, args := s.putInstanceArgs(r)
	access, refresh, expires := "", "", "0"
	if tok != nil {
		var err error
		if access, err = s.sealField(keys[0], "oauth_access", tok.AccessToken); err != nil {
			return err
		}
		if refresh, err = s.sealField(keys[0], "oauth_refresh", tok.RefreshToken); err != nil {
			return err
		}
		if !tok.ExpiresAt.IsZero() {
			expires = strconv.FormatInt(tok.ExpiresAt.UnixMilli(), 10)
		}
	}
	args = append(args, boolArg(r.APIVersion == APIv3), access, refresh, expires)
	err := registerScript.Run(ctx, s.rdb, keys, args...).Err()
	if err != nil && isTokenRequired(err) {
		return fmt.Errorf("register %s: %w", r.ID, ErrTokenRequired)
	}
	return scriptError("register "+r.ID, err)
}

// NeedsToken reports whether a V3 registration of id must carry OAuth
// tokens: the instance is unknown, deprovisioned, or holds none. The
// registry asks before it spends a grant; Register enforces it atomically.
func (s *Store) NeedsToken(ctx context.Context, id string) (bool, error) {
	v, err := s.rdb.HMGet(ctx, instanceKey(id), "registered_at", "deprovisioned_at", "oauth_refresh", "oauth_access").Result()
	if err != nil {
		return false, fmt.Errorf("read instance %s: %w", id, err)
	}
	str := func(i int) string { x, _ := v[i].(string); return x }
	return str(0) == "" || str(1) != "" || str(2) == "" && str(3) == "", nil
}

func isTokenRequired(err error) bool {
	return strings.TrimPrefix(err.Error(), "ERR ") == "token_required"
}
