package herokufake

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// InvalidGrant is the error id of the token endpoint's 400 to a grant or
// refresh token it does not take (OAuth's invalid_grant).
const InvalidGrant = "invalid_grant"

// codeTTL is how long an authorization code can be exchanged after issue.
const codeTTL = 5 * time.Minute

// grant is an authorization code from a provision request.
type grant struct {
	addonID string
	expires time.Time
}

// authorization is what a redeemed code yields: one per exchange, reused by
// every refresh.
type authorization struct {
	addonID string
	userID  string
	refresh string
}

type accessToken struct {
	auth    *authorization
	expires time.Time
}

// tokenResponse is the body of a successful /oauth/token call.
type tokenResponse struct {
	AccessToken  string  `json:"access_token"`
	ExpiresIn    int     `json:"expires_in"`
	RefreshToken string  `json:"refresh_token"`
	TokenType    string  `json:"token_type"`
	UserID       string  `json:"user_id"`
	SessionNonce *string `json:"session_nonce"`
}

// GrantCode issues an authorization code for the add-on, as Heroku's
// provision request carries it. The code is single use and expires five
// minutes after issue. A code for an unknown add-on is issued but never works;
// one for a deprovisioned add-on yields tokens its API answers 404 to.
func (f *Fake) GrantCode(addonID string) string {
	code := newUUID()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[code] = &grant{addonID: addonID, expires: f.now().Add(codeTTL)}
	return code
}

// ExpireAccessTokens makes every access token issued so far invalid, so the
// next call with one answers 401. Refresh tokens keep working.
func (f *Fake) ExpireAccessTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.access)
}

// token serves POST /oauth/token. Token calls do not draw on the rate-limit
// bucket: Heroku documents its limit for the Platform API only.
//
// A wrong client secret answers 401 unauthorized. A code that is unknown,
// used or expired, and an unknown refresh token, answer 400 invalid_grant,
// OAuth's code for them (Heroku does not document its own): rekey treats
// it as that add-on's authorization revoked. A malformed form or grant
// type answers 400 bad_request, which names no grant.
func (f *Fake) token(x *exchange) {
	if err := x.r.ParseForm(); err != nil {
		x.fail(http.StatusBadRequest, "bad_request", "The request body is not a valid form.")
		return
	}
	if !f.clientSecretOK(x.r) {
		x.fail(http.StatusUnauthorized, "unauthorized", "Invalid OAuth client credentials.")
		return
	}
	auth, id, msg := f.redeem(x.r.PostForm)
	if auth == nil {
		x.fail(http.StatusBadRequest, id, msg)
		return
	}
	x.json(http.StatusOK, f.issue(auth))
}

// clientSecretOK checks the client secret, from the form or as the HTTP
// Basic password.
func (f *Fake) clientSecretOK(r *http.Request) bool {
	secret := r.PostForm.Get("client_secret")
	if _, pass, ok := r.BasicAuth(); ok {
		secret = pass
	}
	return equal(secret, f.set.clientSecret)
}

// redeem turns a grant in form into an authorization, or says why not:
// an error id and message.
func (f *Fake) redeem(form map[string][]string) (*authorization, string, string) {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch get("grant_type") {
	case "authorization_code":
		if auth := f.exchangeCode(get("code")); auth != nil {
			return auth, "", ""
		}
		return nil, InvalidGrant, "Invalid OAuth authorization code."
	case "refresh_token":
		if auth := f.lookupRefresh(get("refresh_token")); auth != nil {
			return auth, "", ""
		}
		return nil, InvalidGrant, "Invalid OAuth refresh token."
	}
	return nil, "bad_request", "Unsupported grant_type."
}

// exchangeCode spends a code and returns a new authorization for its add-on,
// or nil if the code is unknown, used, expired or for no known add-on.
func (f *Fake) exchangeCode(code string) *authorization {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.codes[code]
	delete(f.codes, code)
	if !ok || f.now().After(g.expires) || f.addons[g.addonID] == nil {
		return nil
	}
	auth := &authorization{addonID: g.addonID, userID: newUUID(), refresh: newUUID()}
	f.refresh[auth.refresh] = auth
	return auth
}

func (f *Fake) lookupRefresh(token string) *authorization {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refresh[token]
}

// issue mints an access token for auth. Heroku's expires_in is one second
// short of the lifetime (28799 for 8 hours); so is the fake's.
func (f *Fake) issue(auth *authorization) tokenResponse {
	tok := newToken("HRKU-")
	f.mu.Lock()
	f.access[tok] = &accessToken{auth: auth, expires: f.now().Add(f.set.accessTTL)}
	f.mu.Unlock()
	return tokenResponse{
		AccessToken:  tok,
		ExpiresIn:    int(f.set.accessTTL/time.Second) - 1,
		RefreshToken: auth.refresh,
		TokenType:    "Bearer",
		UserID:       auth.userID,
	}
}

// bearer returns the add-on the request's live access token is bound to.
func (f *Fake) bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.access[tok]
	if !ok || !f.now().Before(at.expires) {
		return "", false
	}
	return at.auth.addonID, true
}

// equal compares secrets in constant time.
func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
