package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

// ErrTokenRequired means a V3 instance would be stored without OAuth
// tokens, so it could never be rotated: its first registration (or its
// registration again after a deprovisioning) must carry them.
var ErrTokenRequired = errors.New("a v3 instance needs oauth tokens")

// registerScript stores a registration and the instance's sealed OAuth
// tokens in one step: either both are stored, or neither (README.md,
// "HTTP API"). It runs putInstanceLua unchanged, as a function, and
// writes the tokens (oauthKey, token.go) only when that succeeded; the
// token write cannot fail once the registration did not. It drops the
// hash fields where earlier versions kept the tokens.
//
// Tokens written remember the grant they were exchanged from (grantKey),
// or forget the grant remembered when they came without one.
//
// Tokens written end a quarantine whose reason asks for them
// (RegisterAgain): the instance is scheduled again, as an unquarantine
// would. Left set aside, it was never rotated on schedule again, though
// the partner did what the reason asked.
//
// KEYS: registerKeys, putInstanceScript's but its last (rekey:v1_apps),
// then the tokens' key, the grant's and the grant's claim (dropped once the
// grant registered), then rekey:v1_apps, which putInstanceLua reads as
// V1APPS wherever it sits, its database keys, then rekey:quarantined.
// ARGV: those of putInstanceScript, then five more, read from the end so
// that putInstanceScript may grow: the grant's record ('=' and its
// fingerprint, grantKey; "" when the tokens came without a grant) and how
// long to keep it in ms, token required ("1": refuse when no token is
// given and none is held by a live instance), the sealed tokens
// (sealTokens), expires_at ms. Empty sealed tokens mean "no tokens in
// this request".
// Returns what putInstanceScript returns; error "token_required" when a
// token is required and missing, or putInstanceScript's errors.
var registerScript = eventScript(luaSchedule, luaRetention, luaV1Apps, luaDatabaseFields, luaSortedNames, `
local n = #ARGV
local grant, grantTTL = ARGV[n-4], ARGV[n-3]
local need, tokens, expires = ARGV[n-2], ARGV[n-1], ARGV[n]
if need == '1' and tokens == '' then
  local live = redis.call('EXISTS', KEYS[1]) == 1 and get(KEYS[1], 'deprovisioned_at') == ''
  local held = redis.call('EXISTS', KEYS[15]) == 1 or get(KEYS[1], 'oauth_refresh') ~= '' or
    get(KEYS[1], 'oauth_access') ~= ''
  if not (live and held) then return redis.error_reply('token_required') end
end
local V1APPS, DATABASE, DATABASES = KEYS[18], KEYS[19], KEYS[20]
local function put_instance()
`+putInstanceLua+`
end
local res = put_instance()
if type(res) == 'table' and res.err then return res end
if tokens ~= '' then
  redis.call('SET', KEYS[15], tokens)
  redis.call('HSET', KEYS[1], 'oauth_expires_at', expires)
  redis.call('HDEL', KEYS[1], 'oauth_access', 'oauth_refresh')
  if grant ~= '' then
    redis.call('SET', KEYS[16], grant, 'PX', grantTTL)
    -- The code's exchange is over: a registration waiting for it now finds it registered.
    redis.call('DEL', KEYS[17])
  else
    redis.call('DEL', KEYS[16])
  end
  if get(KEYS[1], 'quarantined_at') ~= '' and
      string.find(get(KEYS[1], 'quarantine_reason'), '`+RegisterAgain+`', 1, true) then
    redis.call('HDEL', KEYS[1], 'quarantined_at', 'quarantine_reason', 'fail_streak')
    redis.call('ZREM', KEYS[21], ARGV[1])
    local p = sched_period(KEYS[7], ARGV[12])
    if p > 0 and schedulable(KEYS[1]) then
      redis.call('ZADD', KEYS[6], score(math.max(first_due(KEYS[1], tonumber(ARGV[11]), p), tonumber(ARGV[8]))), ARGV[1])
    end
    emit(KEYS[4], KEYS[5], ARGV[9], ARGV[10], ARGV[1], 'unquarantined', '', '', 'registration with new OAuth tokens', ARGV[8])
  end
end
return res
`)

// RegisterAgain ends the reason of a quarantine that only new OAuth
// tokens end: a registration that stores some ends it (registerScript).
const RegisterAgain = "register it again with oauth_grant or oauth"

// Register registers or updates an instance and stores its OAuth tokens
// (tok, when not nil) in one atomic step: a failure stores neither. A V3
// registration without tokens is refused with ErrTokenRequired unless the
// instance is live and already holds tokens (an update may omit them).
func (s *Store) Register(ctx context.Context, r Registration, tok *heroku.Token) error {
	return s.register(ctx, r, tok, "")
}

// RegisterGrant is Register with the tokens Heroku exchanged for OAuth
// grant code, after ClaimGrant claimed it: the store remembers for a day
// that the code registered the instance (grantKey), so that ClaimGrant
// answers GrantAlreadyRegistered to a registration retried with it.
func (s *Store) RegisterGrant(ctx context.Context, r Registration, tok heroku.Token, code secret.String) error {
	fp, _ := s.grantFingerprints(r.ID, code)
	return s.register(ctx, r, &tok, grantRegistered+fp)
}

// register is Register, the tokens' grant recorded as grant ("" for none).
func (s *Store) register(ctx context.Context, r Registration, tok *heroku.Token, grant string) error {
	if err := r.Validate(); err != nil {
		return err
	}
	_, args, err := s.putInstanceArgs(r)
	if err != nil {
		return err
	}
	keys := newRegisterKeys(r.ID, r.CurrentCredentialID).list()
	tokens, expires, err := s.registrationTokens(ctx, r.ID, tok)
	if err != nil {
		return err
	}
	args = append(args, grant, grantMemory.Milliseconds(), boolArg(r.APIVersion == APIv3), tokens, expires)
	err = registerScript.Run(ctx, s.rdb, keys, args...).Err()
	if err != nil && isTokenRequired(err) {
		return fmt.Errorf("register %s: %w", r.ID, ErrTokenRequired)
	}
	return scriptError("register "+r.ID, err)
}

// registrationTokens seals a registration's tokens (none when tok is nil)
// and formats their expiry. A token without a refresh token keeps the
// stored one, as SaveToken does.
func (s *Store) registrationTokens(ctx context.Context, id string, tok *heroku.Token) (sealed, expires string, err error) {
	if tok == nil {
		return "", "0", nil
	}
	refresh := tok.RefreshToken
	if refresh.IsZero() {
		held, _, err := s.loadToken(ctx, id)
		if err != nil && !errors.Is(err, heroku.ErrNoToken) && !errors.Is(err, heroku.ErrTokenUnreadable) {
			return "", "", err
		}
		refresh = held.RefreshToken
	}
	if sealed, err = s.sealTokens(id, tok.AccessToken, refresh); err != nil {
		return "", "", err
	}
	expires = "0"
	if !tok.ExpiresAt.IsZero() {
		expires = strconv.FormatInt(tok.ExpiresAt.UnixMilli(), 10)
	}
	return sealed, expires, nil
}

// registerKeys are the KEYS of registerScript: putInstanceKeys, then the
// tokens' key, the grant's and its claim's.
type registerKeys struct {
	instance         string // KEYS[1] -> rekey:instance:<id>
	instances        string // KEYS[2] -> rekey:instances
	current          string // KEYS[3] -> rekey:cred:<id>:<current credential id> (ARGV[7])
	instanceEvents   string // KEYS[4] -> rekey:history:<id>
	events           string // KEYS[5] -> rekey:events
	due              string // KEYS[6] -> rekey:due
	schedule         string // KEYS[7] -> rekey:schedule
	credentialPrefix string // KEYS[8] -> rekey:cred:<id>: (the script appends credential ids)
	retiring         string // KEYS[9] -> rekey:retiring
	legacyEvents     string // KEYS[10] -> rekey:events:<id> (the stream of earlier versions)
	previous         string // KEYS[11] -> rekey:previous:<id>
	revokeDue        string // KEYS[12] -> rekey:revoke_due
	deletes          string // KEYS[13] -> rekey:deletes:<id>
	unconfirmed      string // KEYS[14] -> rekey:unconfirmed:<id>
	oauth            string // KEYS[15] -> rekey:oauth:<id>
	grant            string // KEYS[16] -> rekey:grant:<id>
	grantClaim       string // KEYS[17] -> rekey:grant_claim:<id>
	v1Apps           string // KEYS[18] -> rekey:v1_apps (putInstanceScript's KEYS[15], V1APPS)
	database         string // KEYS[19] -> rekey:database:<id> (putInstanceScript's KEYS[16], DATABASE)
	databases        string // KEYS[20] -> rekey:databases (putInstanceScript's KEYS[17], DATABASES)
	quarantined      string // KEYS[21] -> rekey:quarantined
}

func newRegisterKeys(id, currentCredID string) registerKeys {
	p := newPutInstanceKeys(id, currentCredID)
	return registerKeys{instance: p.instance, instances: p.instances, current: p.current,
		instanceEvents: p.instanceEvents, events: p.events, due: p.due, schedule: p.schedule,
		credentialPrefix: p.credentialPrefix, retiring: p.retiring, legacyEvents: p.legacyEvents,
		previous: p.previous, revokeDue: p.revokeDue, deletes: p.deletes, unconfirmed: p.unconfirmed,
		oauth: oauthKey(id), grant: grantKey(id), grantClaim: grantClaimKey(id), v1Apps: p.v1Apps,
		database: p.database, databases: p.databases, quarantined: quarantinedKey()}
}

func (k registerKeys) list() []string {
	return []string{k.instance, k.instances, k.current, k.instanceEvents, k.events, k.due, k.schedule,
		k.credentialPrefix, k.retiring, k.legacyEvents, k.previous, k.revokeDue, k.deletes, k.unconfirmed,
		k.oauth, k.grant, k.grantClaim, k.v1Apps, k.database, k.databases, k.quarantined}
}

// NeedsToken reports whether a V3 registration of id must carry OAuth
// tokens: the instance is unknown, deprovisioned, or holds none. The
// registry asks before it spends a grant; Register enforces it atomically.
func (s *Store) NeedsToken(ctx context.Context, id string) (bool, error) {
	pipe := s.rdb.Pipeline()
	hmget := pipe.HMGet(ctx, instanceKey(id), "registered_at", "deprovisioned_at", "oauth_refresh", "oauth_access")
	held := pipe.Exists(ctx, oauthKey(id))
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("read instance %s: %w", id, err)
	}
	v := hmget.Val()
	str := func(i int) string { x, _ := v[i].(string); return x }
	return str(0) == "" || str(1) != "" || held.Val() == 0 && str(2) == "" && str(3) == "", nil
}

func isTokenRequired(err error) bool {
	return strings.TrimPrefix(err.Error(), "ERR ") == "token_required"
}

// RevokeDueMargin is how near its revoke time a previous or discarded
// credential can no longer be made current again by a registration
// (putInstanceScript, CheckCurrent). The revoke task reads the credential
// once and, its revoke time passed on the task's clock, asks the issuer
// about usage and revokes it whatever a registration makes of it
// meanwhile (I1). A registration after that read comes after the revoke
// time too, however long the task takes to reach its DELETE, so the
// margin need only cover how far the worker's clock may be ahead of the
// registering process's. Both read Redis's clock through their own
// measured offsets (internal/redisclock): what stays between them is a
// measurement's uncertainty and a clock stepped between two measurements,
// 30 s apart. A minute covers that with room; it costs a re-provisioning
// naming such a credential a new one, minted for it.
const RevokeDueMargin = time.Minute

// CheckCurrent answers ErrCredentialRevoked or ErrCredentialRevokeDue
// when registering r would make current a credential of the instance that
// was revoked, or whose revocation is due within RevokeDueMargin, as the
// registration itself would refuse it (putInstanceScript): the registry
// asks first, so that such a registration spends no oauth_grant.
func (s *Store) CheckCurrent(ctx context.Context, r Registration) error {
	if r.CurrentCredentialID == "" {
		return nil
	}
	pipe := s.rdb.Pipeline()
	inst := pipe.HMGet(ctx, instanceKey(r.ID), "deprovisioned_at", "current")
	cred := pipe.HMGet(ctx, credentialKey(r.ID, r.CurrentCredentialID), "state", "revoked_at", "revoke_at")
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read instance %s: %w", r.ID, err)
	}
	str := func(v []any, i int) string { x, _ := v[i].(string); return x }
	i, c := inst.Val(), cred.Val()
	if takes := str(i, 0) != "" || str(i, 1) == ""; !takes {
		return nil
	}
	switch st := str(c, 0); {
	case st == CredentialRevoked || str(c, 1) != "":
		return fmt.Errorf("register %s: %w", r.ID, ErrCredentialRevoked)
	case (st == CredentialPrevious || st == CredentialDiscarded) &&
		!fromMS(str(c, 2)).After(s.now().Add(RevokeDueMargin)):
		return fmt.Errorf("register %s: %w", r.ID, ErrCredentialRevokeDue)
	}
	return nil
}
