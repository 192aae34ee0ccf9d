// Package registry registers add-on instances with rekey: it checks what a
// producer sends (the HTTP API's PUT, `rekey instances import`), exchanges a
// V3 OAuth grant code for tokens at once (codes are single use and expire
// in about five minutes), and stores the instance with its tokens sealed.
package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// Input is one instance's registration as producers send it, in the HTTP
// API's JSON shape (DESIGN.md, "Contracts").
type Input struct {
	// ID is the add-on uuid; the HTTP API takes it from the path.
	ID           string   `json:"id,omitempty"`
	APIVersion   string   `json:"api_version"`
	ConfigVars   []string `json:"config_vars"`
	HerokuID     string   `json:"heroku_id,omitempty"`
	PrivateSpace bool     `json:"private_space"`
	// Grace is a Go duration such as "2h"; empty means the default.
	Grace               string `json:"grace,omitempty"`
	CurrentCredentialID string `json:"current_credential_id,omitempty"`
	// OAuthGrant is the provision request's grant, exchanged at once.
	OAuthGrant *Grant `json:"oauth_grant,omitempty"`
	// OAuth carries tokens the partner already holds.
	OAuth *Tokens `json:"oauth,omitempty"`
}

// Grant is an OAuth authorization code.
type Grant struct {
	Code secret.String `json:"code"`
}

// Tokens are OAuth tokens the partner already holds.
type Tokens struct {
	RefreshToken secret.String `json:"refresh_token"`
	AccessToken  secret.String `json:"access_token"`
	ExpiresAt    time.Time     `json:"expires_at"`
}

// Exchanger trades a grant code for tokens (*heroku.Client).
type Exchanger interface {
	ExchangeGrant(ctx context.Context, code secret.String) (heroku.Token, error)
}

// Registry registers instances. It is safe for concurrent use.
type Registry struct {
	store *store.Store
	oauth Exchanger
}

// New returns a Registry over st; oauth exchanges V3 grant codes.
func New(st *store.Store, oauth Exchanger) *Registry { return &Registry{store: st, oauth: oauth} }

// InputError is a registration that is not acceptable as sent.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Registration checks in and returns the store's registration for it.
func (in Input) Registration() (store.Registration, error) {
	r := store.Registration{ID: in.ID, APIVersion: in.APIVersion, ConfigVars: in.ConfigVars,
		HerokuID: in.HerokuID, PrivateSpace: in.PrivateSpace, CurrentCredentialID: in.CurrentCredentialID}
	if in.Grace != "" {
		d, err := time.ParseDuration(in.Grace)
		if err != nil || d <= 0 {
			return r, &InputError{fmt.Errorf("grace %q is not a positive Go duration such as \"2h\"", in.Grace)}
		}
		r.Grace = d
	}
	if err := r.Validate(); err != nil {
		return r, &InputError{err}
	}
	switch {
	case in.OAuthGrant != nil && in.OAuth != nil:
		return r, &InputError{errors.New("send oauth_grant or oauth, not both")}
	case in.OAuthGrant != nil && in.OAuthGrant.Code.IsZero():
		return r, &InputError{errors.New("oauth_grant.code is empty")}
	case in.OAuth != nil && in.OAuth.RefreshToken.IsZero():
		return r, &InputError{errors.New("oauth.refresh_token is required")}
	case in.APIVersion == store.APIv1 && (in.OAuthGrant != nil || in.OAuth != nil):
		return r, &InputError{errors.New("oauth is for api_version v3; v1 uses the manifest credentials")}
	}
	return r, nil
}

// Put registers or updates one instance. A V3 grant is exchanged first, so
// nothing is stored when the exchange fails. Errors in the input are
// *InputError; a refused grant is a *heroku.APIError.
func (r *Registry) Put(ctx context.Context, in Input) error {
	reg, err := in.Registration()
	if err != nil {
		return err
	}
	var tok *heroku.Token
	switch {
	case in.OAuthGrant != nil:
		t, err := r.oauth.ExchangeGrant(ctx, in.OAuthGrant.Code)
		if err != nil {
			return fmt.Errorf("exchange oauth grant of %s: %w", in.ID, err)
		}
		tok = &t
	case in.OAuth != nil:
		tok = &heroku.Token{AccessToken: in.OAuth.AccessToken, RefreshToken: in.OAuth.RefreshToken,
			ExpiresAt: in.OAuth.ExpiresAt}
	}
	if err := r.store.PutInstance(ctx, reg); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &InputError{fmt.Errorf("instance %s was deprovisioned and cannot be registered again", in.ID)}
		}
		return err
	}
	if tok != nil {
		return r.store.SaveToken(ctx, reg.ID, *tok)
	}
	return nil
}
