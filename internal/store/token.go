package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

var _ heroku.TokenStore = (*Store)(nil)

// LoadToken returns an instance's OAuth tokens, opened, or an error wrapping
// heroku.ErrNoToken. It implements heroku.TokenStore.
func (s *Store) LoadToken(ctx context.Context, addonID string) (heroku.Token, error) {
	key := instanceKey(addonID)
	vals, err := s.rdb.HMGet(ctx, key, "oauth_access", "oauth_refresh", "oauth_expires_at").Result()
	if err != nil {
		return heroku.Token{}, fmt.Errorf("load token: %w", err)
	}
	access, _ := vals[0].(string)
	refresh, _ := vals[1].(string)
	expires, _ := vals[2].(string)
	if refresh == "" && access == "" {
		return heroku.Token{}, fmt.Errorf("load token of %s: %w", addonID, heroku.ErrNoToken)
	}
	var t heroku.Token
	// A token that cannot be opened stays so until an operator acts (a
	// dropped encryption key): heroku.ErrTokenUnreadable makes it permanent.
	if t.AccessToken, err = s.openField(key, "oauth_access", access); err != nil {
		return heroku.Token{}, fmt.Errorf("%w: %w", heroku.ErrTokenUnreadable, err)
	}
	if t.RefreshToken, err = s.openField(key, "oauth_refresh", refresh); err != nil {
		return heroku.Token{}, fmt.Errorf("%w: %w", heroku.ErrTokenUnreadable, err)
	}
	t.ExpiresAt = fromMS(expires)
	return t, nil
}

// SaveToken seals and stores an instance's OAuth tokens. It implements
// heroku.TokenStore. It does not create an instance that does not exist.
func (s *Store) SaveToken(ctx context.Context, addonID string, t heroku.Token) error {
	key := instanceKey(addonID)
	access, err := s.sealField(key, "oauth_access", t.AccessToken)
	if err != nil {
		return err
	}
	refresh, err := s.sealField(key, "oauth_refresh", t.RefreshToken)
	if err != nil {
		return err
	}
	expires := strconv.FormatInt(t.ExpiresAt.UnixMilli(), 10)
	if t.ExpiresAt.IsZero() {
		expires = "0"
	}
	keys := saveTokenKeys{instance: key}
	err = saveTokenScript.Run(ctx, s.rdb, keys.list(), access, refresh, expires).Err()
	return scriptError("save token of "+addonID, err)
}

// saveTokenKeys are the KEYS of saveTokenScript.
type saveTokenKeys struct {
	instance string // KEYS[1] -> rekey:instance:<id>
}

func (k saveTokenKeys) list() []string { return []string{k.instance} }

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
