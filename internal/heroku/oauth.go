package heroku

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// tokenResponse is Heroku's answer from POST /oauth/token.
type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	RefreshToken string          `json:"refresh_token"`
}

// maxTokenLife caps the life an answer gives a token: Heroku's last eight
// hours, and an expires_in of years (or one that overflows a duration)
// would keep a token that stopped working in use until a 401.
const maxTokenLife = 24 * time.Hour

// tokenPattern is what a token may hold to be used and kept: the
// characters of RFC 6750's bearer tokens. Any other (a line break, a NUL)
// cannot go in an Authorization header, and the call would never leave.
var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

// maxTokenLen bounds a token's length as kept.
const maxTokenLen = 4096

// UsableToken reports whether s can be kept as an OAuth token and sent in an
// Authorization header: at most 4096 bytes of RFC 6750's bearer token
// characters. Heroku's token answers and a registration's tokens are held
// to it alike.
func UsableToken(s string) bool { return len(s) <= maxTokenLen && tokenPattern.MatchString(s) }

// seconds reads expires_in as a number of seconds, whole or not, or a
// string of one; 0 when absent or unreadable (no expiry known: the token
// is refreshed on a 401).
func seconds(raw json.RawMessage) float64 {
	var n float64
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return n
		}
	}
	return 0
}

// ExchangeGrant trades the authorization code from a V3 provision request for
// the add-on's first Token. The code is single use and expires within minutes,
// so the caller saves the token itself. It does not pass through the Limiter.
//
// An answer without a refresh token is refused as unexpected: its access
// token would work for about 8 hours and nothing could renew it after,
// while the code that could have been exchanged again is spent. The
// registration fails at once, when the partner can still act, rather than
// every rotation after those hours. A redirect is ErrUnexpectedAnswer, as
// a page answered 200 is: the token endpoint never redirects, so what
// answered is not Heroku's (a HEROKU_ID_URL of http://, a sign-in page),
// and the code, which did not reach Heroku, is no more refused than spent.
func (c *Client) ExchangeGrant(ctx context.Context, code secret.String) (Token, error) {
	if code.IsZero() {
		return Token{}, fmt.Errorf("heroku %s: empty grant code: %w", EndpointOAuthToken, ErrInvalidRequest)
	}
	t, err := c.tokenCall(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code.Reveal()}}, false)
	switch status := apiStatus(err); {
	case status >= 300 && status <= 399:
		return Token{}, fmt.Errorf("%w: %w", ErrUnexpectedAnswer, err)
	case err == nil && t.RefreshToken.IsZero():
		return Token{}, fmt.Errorf("heroku %s: %w", EndpointOAuthToken, ErrGrantWithoutRefreshToken)
	}
	return t, err
}

// Refresh returns a new access token for a refresh token. Heroku reuses the
// refresh token, so the result carries the old one when Heroku sends none. It
// does not save the result and does not pass through the Limiter. An empty
// refresh token fails with ErrNoRefreshToken.
func (c *Client) Refresh(ctx context.Context, refresh secret.String) (Token, error) {
	return c.refresh(ctx, Token{RefreshToken: refresh}, false)
}

// refresh is Refresh of old's refresh token. Old's access token, which
// the calls before it sent, is scrubbed from the answer too, and so are
// earlier's tokens (one an earlier refresh replaced). Opaque keeps no text
// of the answer's (call.opaque): a refresh made for a call to the config
// endpoints.
func (c *Client) refresh(ctx context.Context, old Token, opaque bool, earlier ...Token) (Token, error) {
	refresh := old.RefreshToken
	if refresh.IsZero() {
		return Token{}, fmt.Errorf("heroku %s: %w", EndpointOAuthToken, ErrNoRefreshToken)
	}
	held := []string{old.AccessToken.Reveal()}
	for _, e := range earlier {
		held = append(held, e.AccessToken.Reveal(), e.RefreshToken.Reveal())
	}
	t, err := c.tokenCall(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh.Reveal()}},
		opaque, held...)
	if err == nil && t.RefreshToken.IsZero() {
		t.RefreshToken = refresh
	}
	return t, err
}

// tokenCall posts form to the OAuth token endpoint with the client secret.
// Held are other secrets of the add-on's the answer is scrubbed of;
// opaque is the call's (call.opaque).
func (c *Client) tokenCall(ctx context.Context, form url.Values, opaque bool, held ...string) (Token, error) {
	if c.clientSecret.IsZero() {
		return Token{}, fmt.Errorf("heroku %s: no oauth client secret: %w", EndpointOAuthToken, ErrNotConfigured)
	}
	form.Set("client_secret", c.clientSecret.Reveal())
	secrets := append([]string{c.clientSecret.Reveal(), form.Get("code"), form.Get("refresh_token")}, held...)
	body, err := c.do(ctx, call{
		endpoint:    EndpointOAuthToken,
		method:      http.MethodPost,
		url:         c.idURL + "/oauth/token",
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded",
		authorize:   func(r *http.Request) { r.Header.Set("Accept", "application/json") },
		secrets:     secrets,
		opaque:      opaque,
	})
	if err != nil {
		return Token{}, err
	}
	return c.parseToken(body)
}

// parseToken turns a token response into a Token, dating its expiry by the
// client's clock.
func (c *Client) parseToken(body []byte) (Token, error) {
	var r tokenResponse
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" {
		return Token{}, fmt.Errorf("heroku %s: a 2xx with no access token: %w", EndpointOAuthToken, ErrUnexpectedAnswer)
	}
	if !UsableToken(r.AccessToken) || (r.RefreshToken != "" && !UsableToken(r.RefreshToken)) {
		return Token{}, fmt.Errorf("heroku %s: a 2xx whose token holds characters no bearer token has: %w",
			EndpointOAuthToken, ErrUnexpectedAnswer)
	}
	t := Token{AccessToken: secret.New(r.AccessToken), RefreshToken: secret.New(r.RefreshToken)}
	if s := seconds(r.ExpiresIn); s > 0 {
		t.ExpiresAt = c.now().Add(time.Duration(min(s, maxTokenLife.Seconds()) * float64(time.Second)))
	}
	return t, nil
}

// token returns a usable access token for the add-on, refreshing and saving
// it first when it is missing or expires within the refresh-ahead window;
// stored is the token as loaded, which the refresh replaced (t itself when
// none was made). Opaque is the refresh's (refresh).
func (c *Client) token(ctx context.Context, addonID string, opaque bool) (t, stored Token, err error) {
	if c.tokens == nil {
		return Token{}, Token{}, fmt.Errorf("heroku: no token store: %w", ErrNotConfigured)
	}
	stored, err = c.tokens.LoadToken(ctx, addonID)
	if err != nil {
		return Token{}, Token{}, fmt.Errorf("heroku: load token: %w", err)
	}
	if !c.needsRefresh(stored) && !c.wasRefused(addonID, stored) {
		return stored, stored, nil
	}
	t, err = c.refreshAndSave(ctx, addonID, stored, opaque)
	return t, stored, err
}

// needsRefresh reports whether t is missing or too close to expiry to use.
func (c *Client) needsRefresh(t Token) bool {
	if t.AccessToken.IsZero() {
		return true
	}
	return !t.ExpiresAt.IsZero() && !c.now().Add(c.refreshAhead).Before(t.ExpiresAt)
}

// refreshAndSave refreshes old and saves the result. A failed save fails the
// call: the refresh token stays valid, so the retry refreshes again. With a
// RefreshSaver, a registration's new tokens stored during the refresh win
// over the refresh of the old ones, and are returned.
func (c *Client) refreshAndSave(ctx context.Context, addonID string, old Token, opaque bool, earlier ...Token) (Token, error) {
	t, err := c.refresh(ctx, old, opaque, earlier...)
	if err != nil {
		return Token{}, c.refreshError(ctx, addonID, old, err)
	}
	if rs, ok := c.tokens.(RefreshSaver); ok {
		saved, err := rs.SaveRefreshed(ctx, addonID, old, t)
		if err != nil {
			return Token{}, fmt.Errorf("heroku: save token: %w", err)
		}
		return saved, nil
	}
	if err := c.tokens.SaveToken(ctx, addonID, t); err != nil {
		return Token{}, fmt.Errorf("heroku: save token: %w", err)
	}
	return t, nil
}

// errTokenReplaced is an invalid_grant to the refresh of a refresh token
// that the store no longer holds. Unclassified, it is transient.
var errTokenReplaced = errors.New("heroku: the refresh token refused was replaced meanwhile; the next call uses the one stored")

// refreshError sorts the failed refresh of old, the add-on's token as
// loaded. An invalid_grant to a refresh token the store still holds is
// the add-on's authorization revoked (ErrTokenRefused). One the store no
// longer holds was replaced during the refresh: another process refreshed
// it first from an endpoint that rotates refresh tokens and refuses the
// old one after, or the partner registered the add-on again. That says
// nothing of the token stored, and the call fails as transient: read as
// revoked, the rotation failed for good and the instance was set aside
// with "register it again" while its token worked.
func (c *Client) refreshError(ctx context.Context, addonID string, old Token, err error) error {
	err = sortRefreshError(err)
	if !errors.Is(err, ErrTokenRefused) {
		return err
	}
	now, lerr := c.tokens.LoadToken(ctx, addonID)
	if lerr != nil || now.RefreshToken.IsZero() || now.RefreshToken.Reveal() == old.RefreshToken.Reveal() {
		return err
	}
	return fmt.Errorf("heroku %s: status 400 %s: %w", EndpointOAuthToken, oauthInvalidGrant, errTokenReplaced)
}

// sortRefreshError sorts a refused refresh. Only invalid_grant names the
// add-on's own authorization (ErrTokenRefused). A 401 is rekey's client
// secret, a 429 the endpoint's load and a 408 no answer in time (a front
// built on Envoy answers it when the endpoint is slow), all left as they
// are; any other 4xx is ErrTokenDenied: it proves nothing of this add-on,
// and the same answer to every add-on is an account-level fault for the
// breaker. So is
// an answer that is not the token endpoint's, a redirect or a 2xx without
// a token (ErrUnexpectedAnswer): a proxy before it, or a HEROKU_ID_URL
// naming another host, gives it to every add-on alike, and the refresh
// token, which Heroku keeps, works once that is fixed. The grant's
// exchange, whose code is spent, is not sorted so.
func sortRefreshError(err error) error {
	var api *APIError
	switch {
	case errors.Is(err, ErrUnexpectedAnswer), errors.As(err, &api) && api.Status >= 300 && api.Status <= 399:
		return fmt.Errorf("%w: %w", ErrTokenDenied, err)
	case !errors.As(err, &api) || api.Status < 400 || api.Status > 499 || api.Status == http.StatusUnauthorized ||
		api.Status == http.StatusRequestTimeout:
		return err
	case api.Status == http.StatusBadRequest && api.ID == oauthInvalidGrant:
		return fmt.Errorf("%w: %w", ErrTokenRefused, err)
	}
	return fmt.Errorf("%w: %w", ErrTokenDenied, err)
}

// oauthInvalidGrant is OAuth's error code (RFC 6749, 5.2) for a grant or
// refresh token that is invalid, expired or revoked.
const oauthInvalidGrant = "invalid_grant"

// ClientRefused reports whether the token endpoint refused rekey's OAuth
// client itself rather than a grant: OAuth's invalid_client (the client
// secret, HEROKU_OAUTH_CLIENT_SECRET, is not the add-on's) or
// unauthorized_client (RFC 6749, 5.2). The grant or refresh token sent
// with it was not looked at, so it is neither spent nor refused, and every
// add-on gets the same answer until the secret is fixed.
func ClientRefused(err error) bool {
	var api *APIError
	return errors.As(err, &api) && api.Endpoint == EndpointOAuthToken &&
		(api.ID == "invalid_client" || api.ID == "unauthorized_client")
}

// withToken runs a V3 call built around the add-on's access token. When
// Heroku answers 401 it refreshes the token once and runs the call once more:
// the only retry the client makes. When that refresh fails, the process
// remembers the token as refused (refuse), so that its next call refreshes
// first instead of spending a call of the budget on a token Heroku refused.
// Every token of the add-on's the call has held, its refresh token and
// the access tokens a refresh replaced too, is scrubbed from the answer: a
// front that saw one may echo it in the next. A refresh made for a call
// to endpoint keeps what that call keeps of its answer: nothing, for the
// config endpoints (quotesTheApp).
func (c *Client) withToken(ctx context.Context, addonID, endpoint string, build func(access secret.String) call) ([]byte, error) {
	opaque := quotesTheApp(endpoint)
	t, stored, err := c.token(ctx, addonID, opaque)
	if err != nil {
		return nil, err
	}
	body, err := c.do(ctx, holding(build(t.AccessToken), t, stored))
	if Classify(err) != ClassUnauthorized {
		return body, err
	}
	fresh, err := c.refreshAndSave(ctx, addonID, t, opaque, stored)
	if err != nil {
		c.refuse(addonID, t)
		return nil, err
	}
	return c.do(ctx, holding(build(fresh.AccessToken), fresh, t, stored))
}

// holding adds the tokens' values to cl's secrets.
func holding(cl call, tokens ...Token) call {
	for _, t := range tokens {
		cl.secrets = append(slices.Clip(cl.secrets), t.AccessToken.Reveal(), t.RefreshToken.Reveal())
	}
	return cl
}

// refuse remembers t's access token, which Heroku answered 401, as
// refused for addonID. A token saved since (a refresh, a registration
// again) has another access token and is used as it is.
func (c *Client) refuse(addonID string, t Token) {
	c.refused.store(addonID, tokenDigest(t))
}

// wasRefused reports whether t's access token is the one this process
// last saw refused for addonID; a token that differs ends that memory.
func (c *Client) wasRefused(addonID string, t Token) bool {
	return c.refused.is(addonID, tokenDigest(t))
}

// maxRefused bounds the memory of refused tokens: an add-on whose grant
// was revoked and that is then deprovisioned never has a newer token to
// end its memory, and a process meets thousands over the days it runs.
// Past the bound the oldest refusal is forgotten; its add-on's next call
// spends one call on the token, as a process that just started does.
const maxRefused = 1024

// refusedTokens is the latest maxRefused refused tokens' digests by
// add-on id, safe for concurrent use. Its zero value is empty.
type refusedTokens struct {
	mu    sync.Mutex
	byID  map[string]*list.Element // of refusal
	order list.List                // oldest first
}

type refusal struct {
	addonID string
	digest  [sha256.Size]byte
}

func (r *refusedTokens) store(addonID string, d [sha256.Size]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byID[addonID]; ok {
		e.Value.(*refusal).digest = d
		r.order.MoveToBack(e)
		return
	}
	if r.byID == nil {
		r.byID = map[string]*list.Element{}
	}
	r.byID[addonID] = r.order.PushBack(&refusal{addonID: addonID, digest: d})
	for r.order.Len() > maxRefused {
		oldest := r.order.Front()
		r.order.Remove(oldest)
		delete(r.byID, oldest.Value.(*refusal).addonID)
	}
}

// is reports whether d is the digest remembered for addonID, and forgets
// the add-on's when it is not.
func (r *refusedTokens) is(addonID string, d [sha256.Size]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[addonID]
	switch {
	case !ok:
		return false
	case e.Value.(*refusal).digest == d:
		return true
	}
	r.order.Remove(e)
	delete(r.byID, addonID)
	return false
}

// tokenDigest is a digest of t's access token, so that the memory of
// refused tokens holds no token.
func tokenDigest(t Token) [sha256.Size]byte { return sha256.Sum256([]byte(t.AccessToken.Reveal())) }
