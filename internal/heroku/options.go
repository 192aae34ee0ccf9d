package heroku

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Option configures a Client. Each option checks its input and NewClient
// returns the first error.
type Option func(*Client) error

// WithAPIURL sets the Platform API base URL (default DefaultAPIURL), for
// example the fake Heroku in tests.
func WithAPIURL(u string) Option {
	return func(c *Client) error {
		base, err := baseURL(u)
		if err != nil {
			return fmt.Errorf("api url: %w", err)
		}
		c.apiURL = base
		return nil
	}
}

// WithIDURL sets the OAuth base URL (default DefaultIDURL).
func WithIDURL(u string) Option {
	return func(c *Client) error {
		base, err := baseURL(u)
		if err != nil {
			return fmt.Errorf("id url: %w", err)
		}
		c.idURL = base
		return nil
	}
}

// baseURL accepts an absolute http(s) URL without credentials, query or
// fragment, and returns it without a trailing slash.
func baseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("scheme must be http or https")
	case u.Host == "":
		return "", errors.New("host is missing")
	case u.User != nil:
		return "", errors.New("must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("must not have a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// WithHTTPClient sets the HTTP client. Its Timeout bounds each call; the
// caller's context bounds it too.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error {
		if h == nil {
			return errors.New("http client is nil")
		}
		c.http = h
		return nil
	}
}

// WithOAuthClientSecret sets the partner's OAuth client secret, needed to
// exchange grants and refresh V3 tokens.
func WithOAuthClientSecret(s secret.String) Option {
	return func(c *Client) error {
		if s.IsZero() {
			return errors.New("oauth client secret is empty")
		}
		c.clientSecret = s
		return nil
	}
}

// WithV1Credentials sets the add-on manifest id and password, needed for V1
// calls.
func WithV1Credentials(manifestID string, password secret.String) Option {
	return func(c *Client) error {
		if manifestID == "" || password.IsZero() {
			return errors.New("v1 manifest id and password are both required")
		}
		c.v1User, c.v1Password = manifestID, password
		return nil
	}
}

// WithLimiter sets the Limiter every Platform API call passes through.
// Without one, calls go out unthrottled.
func WithLimiter(l Limiter) Option {
	return func(c *Client) error {
		if l == nil {
			return errors.New("limiter is nil")
		}
		c.limiter = l
		return nil
	}
}

// WithTokenStore sets where V3 OAuth tokens are loaded from and saved to.
func WithTokenStore(s TokenStore) Option {
	return func(c *Client) error {
		if s == nil {
			return errors.New("token store is nil")
		}
		c.tokens = s
		return nil
	}
}

// WithUserAgent sets the User-Agent header (default DefaultUserAgent).
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if strings.TrimSpace(ua) == "" {
			return errors.New("user agent is empty")
		}
		c.userAgent = ua
		return nil
	}
}

// WithClock sets the clock used for token expiry and Retry-After dates.
func WithClock(now func() time.Time) Option {
	return func(c *Client) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		c.now = now
		return nil
	}
}

// WithRefreshAhead sets how long before expiry an access token is refreshed
// (default DefaultRefreshAhead).
func WithRefreshAhead(d time.Duration) Option {
	return func(c *Client) error {
		if d < 0 {
			return errors.New("refresh ahead must not be negative")
		}
		c.refreshAhead = d
		return nil
	}
}

// WithObserver sets a function called after every HTTP call, including OAuth
// calls and calls that got no response. It must be fast and safe for
// concurrent use.
func WithObserver(f func(CallInfo)) Option {
	return func(c *Client) error {
		if f == nil {
			return errors.New("observer is nil")
		}
		c.observe = f
		return nil
	}
}
