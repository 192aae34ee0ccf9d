package herokufake_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func TestCodeExchange(t *testing.T) {
	t.Parallel()
	secret := herokufake.DefaultClientSecret
	tests := []struct {
		name   string
		form   func(e *env, code string) url.Values
		basic  string // client secret sent as the Basic password instead
		status int
		id     string
	}{
		{"valid code", func(_ *env, code string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {secret}}
		}, "", 200, ""},
		{"secret as basic password", func(_ *env, code string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}}
		}, secret, 200, ""},
		{"just before expiry", func(e *env, code string) url.Values {
			e.clock.Advance(5 * time.Minute)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {secret}}
		}, "", 200, ""},
		{"expired code", func(e *env, code string) url.Values {
			e.clock.Advance(5*time.Minute + time.Second)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {secret}}
		}, "", 400, "invalid_grant"},
		{"reused code", func(e *env, code string) url.Values {
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {secret}}
			if r := e.oauth(form); r.status != 200 {
				e.t.Fatalf("first use: %d", r.status)
			}
			return form
		}, "", 400, "invalid_grant"},
		{"unknown code", func(_ *env, _ string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_secret": {secret}}
		}, "", 400, "invalid_grant"},
		{"code of an unknown add-on", func(e *env, _ string) url.Values {
			code := e.fake.GrantCode("no-such-addon")
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {secret}}
		}, "", 400, "invalid_grant"},
		{"wrong secret", func(_ *env, code string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {"wrong"}}
		}, "", 401, "unauthorized"},
		{"unknown grant type", func(_ *env, code string) url.Values {
			return url.Values{"grant_type": {"password"}, "code": {code}, "client_secret": {secret}}
		}, "", 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.add(spec(addonA))
			code := e.fake.GrantCode(addonA)
			req := e.request(http.MethodPost, "/oauth/token", tt.form(e, code).Encode())
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != "" {
				req.SetBasicAuth("client-id", tt.basic)
			}
			r := e.do(req)
			check(t, "status", r.status, tt.status)
			check(t, "error id", r.err.ID, tt.id)
			if strings.Contains(r.err.Message, code) {
				t.Errorf("error message echoes the code: %s", r.err.Message)
			}
		})
	}
}

func TestTokenResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	tok := e.exchange(addonA)
	check(t, "access token prefix", strings.HasPrefix(tok.AccessToken, "HRKU-"), true)
	check(t, "expires_in", tok.ExpiresIn, 28799)
	check(t, "token_type", tok.TokenType, "Bearer")
	check(t, "refresh token set", tok.RefreshToken != "", true)
	check(t, "user_id set", tok.UserID != "", true)
	check(t, "session_nonce null", tok.SessionNonce == nil, true)
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, herokufake.WithAccessTokenTTL(time.Hour))
	e.add(spec(addonA))
	first := e.exchange(addonA)
	e.clock.Advance(time.Hour)
	check(t, "expired token status", e.patch(addonA, first.AccessToken, urlVar, "v").status, 401)

	refresh := func(token string) reply {
		return e.oauth(url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {token},
			"client_secret": {herokufake.DefaultClientSecret},
		})
	}
	r := refresh(first.RefreshToken)
	check(t, "refresh status", r.status, 200)
	var second tokens
	decode(t, r.body, &second)
	check(t, "expires_in", second.ExpiresIn, 3599)
	check(t, "refresh token reused", second.RefreshToken, first.RefreshToken)
	check(t, "new access token", second.AccessToken != first.AccessToken, true)
	check(t, "refreshed token status", e.patch(addonA, second.AccessToken, urlVar, "v").status, 200)

	check(t, "refresh again status", refresh(first.RefreshToken).status, 200)
	r = refresh("unknown")
	check(t, "unknown refresh token status", r.status, 400)
	check(t, "unknown refresh token id", r.err.ID, "invalid_grant")
}

func TestOAuthTakesNoRateLimitToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, herokufake.WithBucket(2, 1, time.Hour))
	e.add(spec(addonA))
	for range 5 {
		e.exchange(addonA)
	}
	check(t, "remaining", e.fake.Remaining(""), 2)
}
