// Package heroku is rekey's client for Heroku's partner APIs: the V3 Platform
// API for Partners (config vars of an add-on, with OAuth tokens per add-on
// instance), Heroku's OAuth token endpoint, and the legacy V1 App Info API.
//
// The client makes exactly the calls it is asked for. It never retries, except
// for a single token refresh and retry after Heroku answers 401 on a V3 call;
// the task queue owns retries, and Classify tells it which errors are worth
// one. Every Platform API call passes through a Limiter first and reports what
// Heroku said about the budget afterwards. Errors name the endpoint, the
// status, Heroku's request id and message; they never carry tokens, secrets,
// config values or request headers.
package heroku

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Defaults used by NewClient when no option overrides them.
const (
	DefaultAPIURL       = "https://api.heroku.com"
	DefaultIDURL        = "https://id.heroku.com"
	DefaultRefreshAhead = 5 * time.Minute
	DefaultTimeout      = 30 * time.Second
	DefaultUserAgent    = "rekey"
)

// Endpoint names, as they appear in CallInfo, APIError and RateLimitError.
// Metrics use them as labels, so they never change.
const (
	EndpointPatchConfig = "patch_config"
	EndpointGetConfig   = "get_config"
	EndpointGetAddon    = "get_addon"
	EndpointV1Put       = "v1_put"
	EndpointV1Get       = "v1_get"
	EndpointOAuthToken  = "oauth_token"
)

// Endpoints returns every endpoint name, in the order above.
func Endpoints() []string {
	return []string{EndpointPatchConfig, EndpointGetConfig, EndpointGetAddon, EndpointV1Put, EndpointV1Get, EndpointOAuthToken}
}

// Sentinel errors. Classify treats each of them as permanent.
var (
	// ErrNoToken is what a TokenStore returns from LoadToken when it holds no
	// token for the add-on; the client also returns it when a stored token has
	// no refresh token left to renew it with.
	ErrNoToken = errors.New("heroku: no oauth token for add-on")
	// ErrTokenUnreadable is what a TokenStore's LoadToken wraps when it holds
	// a token it cannot open, such as one sealed under an encryption key that
	// was since dropped. Like ErrNoToken it is permanent.
	ErrTokenUnreadable = errors.New("heroku: stored oauth token cannot be opened")
	// ErrNoRefreshToken is ErrNoToken for an add-on whose stored token has
	// no refresh token: its access token works until it expires (about 8
	// hours), and nothing can renew it after. Only a registration with new
	// tokens makes the add-on rotatable again.
	ErrNoRefreshToken = fmt.Errorf("%w: the stored token has no refresh token to renew it with; register the add-on again with oauth_grant or oauth", ErrNoToken)
	// ErrGrantWithoutRefreshToken is a grant exchange answered with an
	// access token but no refresh token: the code is spent (codes are
	// single use), and the tokens could not be renewed after about 8 hours.
	// It is an ErrUnexpectedAnswer, but asking again cannot help.
	ErrGrantWithoutRefreshToken = fmt.Errorf("%w: the grant exchange was answered with no refresh_token", ErrUnexpectedAnswer)
	// ErrTokenRefused means Heroku answered the refresh of an add-on's
	// token 400 invalid_grant (OAuth's error code, as Heroku's error id or
	// as OAuth's "error"): that add-on's authorization was revoked, and
	// only a registration with new tokens makes it rotatable again. Like
	// ErrNoToken it is permanent. A 401 there is not it: that is rekey's
	// client secret refused, for every add-on alike.
	ErrTokenRefused = errors.New("heroku: the add-on's oauth token can no longer be refreshed")
	// ErrTokenDenied means Heroku's token endpoint refused a refresh with a
	// 4xx other than 401, 429 and invalid_grant (a 400 bad_request or
	// invalid_client, a 403), or answered it with what is not its answer
	// (a redirect, or a 2xx without a token, then ErrUnexpectedAnswer
	// too): an answer that names no add-on's grant, as a client secret
	// Heroku no longer takes, or a proxy in front of the endpoint, gives
	// every add-on alike. Nothing says the add-on's authorization is gone,
	// so it is transient: the circuit breaker counts it as a denial, and a
	// run of them across the fleet pauses the wave instead of failing it.
	ErrTokenDenied = errors.New("heroku: the token endpoint refused the refresh without naming the add-on's grant")
	// ErrNotConfigured means the client lacks what a call needs: the OAuth
	// client secret, the V1 manifest credentials or a TokenStore.
	ErrNotConfigured = errors.New("heroku: client not configured for this call")
	// ErrInvalidRequest means the caller asked for a call that cannot be
	// right, such as an empty target or no config vars.
	ErrInvalidRequest = errors.New("heroku: invalid request")
	// ErrUnexpectedAnswer means a 2xx whose body is not what Heroku answers
	// to the call: a config update answered without the config it set, or
	// a config that does not decode, or a page. Whatever answered may not
	// be Heroku (a HEROKU_API_URL or HEROKU_ID_URL that names another
	// host, a proxy): the call proves nothing, not even that it is over (a
	// proxy may still hand it to Heroku), and asking again would prove no
	// more.
	ErrUnexpectedAnswer = errors.New("heroku: unexpected answer")
)

// Target names the add-on instance whose config a call reads or changes.
type Target struct {
	// AddonID is the add-on's UUID. V3 calls address it; every call uses it
	// as the key of the Limiter and the TokenStore.
	AddonID string
	// APIVersion is "v3" or "v1".
	APIVersion string
	// HerokuID is the V1 app id, such as "app123@heroku.com".
	HerokuID string
}

// ConfigVar is one config var as the add-on manifest declares it.
type ConfigVar struct {
	Name  string
	Value secret.String
}

// Token is the OAuth authorization of one V3 add-on instance. A zero
// ExpiresAt means the expiry is unknown: the access token is used until Heroku
// answers 401.
type Token struct {
	AccessToken  secret.String
	RefreshToken secret.String
	ExpiresAt    time.Time
}

// TokenStore keeps each add-on's Token between calls, so that a rotation
// normally costs no refresh. Implementations must be safe for concurrent use.
type TokenStore interface {
	// LoadToken returns the add-on's token, or an error wrapping ErrNoToken.
	LoadToken(ctx context.Context, addonID string) (Token, error)
	// SaveToken replaces the add-on's token.
	SaveToken(ctx context.Context, addonID string, t Token) error
}

// RefreshSaver is a TokenStore that saves a refreshed token only while the
// stored one is still the token refreshed (*store.Store): a registration
// that stored a new authorization during the refresh keeps it, and the
// caller uses it instead of the refresh of the old one.
type RefreshSaver interface {
	SaveRefreshed(ctx context.Context, addonID string, old, t Token) (Token, error)
}

// Limiter spends the shared Heroku call budget. Wait runs before every
// Platform API call (OAuth calls are not counted by Heroku) and Observe after
// every response to one. Implementations must be safe for concurrent use.
type Limiter interface {
	// Wait blocks until a call for addonID may go out. Its error is returned
	// to the caller, wrapped.
	Wait(ctx context.Context, addonID string) error
	// Observe reports Heroku's RateLimit-Remaining (-1 when absent) and the
	// response status.
	Observe(addonID string, remaining int, status int)
}

// CallInfo describes one finished HTTP call, for metrics. It holds no secret.
type CallInfo struct {
	Endpoint  string        // one of the Endpoint constants
	Status    int           // HTTP status; 0 when no response arrived
	Remaining int           // RateLimit-Remaining; -1 when absent
	Duration  time.Duration // until the response headers arrived
}

// Client calls Heroku's partner APIs on behalf of the add-on partner. It is
// safe for concurrent use; build one per process and share it.
type Client struct {
	apiURL       string
	idURL        string
	http         *http.Client
	clientSecret secret.String
	v1User       string
	v1Password   secret.String
	limiter      Limiter
	tokens       TokenStore
	userAgent    string
	now          func() time.Time
	refreshAhead time.Duration
	observe      func(CallInfo)
	// refused maps an add-on id to a digest of the access token Heroku
	// answered 401 and whose refresh failed (withToken): this process
	// refreshes before it uses that token again. Kept in memory, not in the
	// token store, where it would overwrite a token saved meanwhile (a
	// registration again with a new grant). It keeps the latest
	// maxRefused.
	refused refusedTokens
}

// NewClient builds a Client. It fails when an option is given bad input.
func NewClient(opts ...Option) (*Client, error) {
	c := &Client{
		apiURL:       DefaultAPIURL,
		idURL:        DefaultIDURL,
		http:         defaultHTTPClient(),
		userAgent:    DefaultUserAgent,
		now:          time.Now,
		refreshAhead: DefaultRefreshAhead,
	}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, fmt.Errorf("heroku: %w", err)
		}
	}
	return c, nil
}

// defaultHTTPClient bounds every call and does not follow redirects: Heroku's
// partner endpoints never redirect, and following one would turn a PATCH into
// a GET that looks like success.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: DefaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
