package heroku_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

func TestTokenCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		call     func(*heroku.Client) (heroku.Token, error)
		wantForm url.Values
	}{
		{"exchange grant", func(c *heroku.Client) (heroku.Token, error) {
			return c.ExchangeGrant(context.Background(), secret.New(grantCode))
		}, url.Values{"grant_type": {"authorization_code"}, "code": {grantCode}, "client_secret": {clientSecret}}},
		{"refresh", func(c *heroku.Client) (heroku.Token, error) {
			return c.Refresh(context.Background(), secret.New(refreshToken))
		}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_secret": {clientSecret}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(tokenRoute, reply{status: 200, body: tokenBody})
			lim := &countingLimiter{}
			tok, err := tt.call(newClient(t, s, heroku.WithLimiter(lim)))
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken.Reveal() != freshAccess || tok.RefreshToken.Reveal() != refreshToken ||
				!tok.ExpiresAt.Equal(epoch.Add(28799*time.Second)) {
				t.Errorf("token: access ok %v, refresh ok %v, expires %v", tok.AccessToken.Reveal() == freshAccess,
					tok.RefreshToken.Reveal() == refreshToken, tok.ExpiresAt)
			}
			r := s.requests(tokenRoute)[0]
			checkHeader(t, r, "Content-Type", "application/x-www-form-urlencoded")
			if got, _ := url.ParseQuery(r.body); got.Encode() != tt.wantForm.Encode() {
				t.Errorf("form = %v, want %v", got, tt.wantForm)
			}
			if lim.waits != 0 {
				t.Errorf("oauth call waited on the limiter %d times, want 0", lim.waits)
			}
		})
	}
}

func TestTokenCallFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply reply
		want  heroku.Class
	}{
		{"invalid grant", reply{status: 400, body: `{"id":"bad_request","message":"invalid grant"}`}, heroku.ClassPermanent},
		{"bad client secret", reply{status: 401, body: `{"id":"unauthorized"}`}, heroku.ClassUnauthorized},
		{"server error", reply{status: 503, body: `oops`}, heroku.ClassTransient},
		// A 2xx that is not Heroku's answer (heroku.ErrUnexpectedAnswer):
		// asking again would prove no more.
		{"no access token", reply{status: 200, body: `{"expires_in":1}`}, heroku.ClassPermanent},
		{"a page", reply{status: 200, body: `<html>parked</html>`, header: map[string]string{"Content-Type": "text/html"}},
			heroku.ClassPermanent},
		// A token no Authorization header can carry would be kept, and
		// every call with it would fail before it left (one with a NUL
		// would corrupt the sealed pair it is stored in).
		{"an access token with a line break", reply{status: 200, body: `{"access_token":"HRKU-x\nEvil: 1"}`}, heroku.ClassPermanent},
		{"a refresh token with a NUL", reply{status: 200, body: `{"access_token":"HRKU-x","refresh_token":"r\u0000s"}`}, heroku.ClassPermanent},
		// A grant's token that nothing can renew works for 8 hours, and
		// the single-use code is spent: the registration must fail now.
		{"no refresh token", reply{status: 200, body: `{"access_token":"HRKU-x","expires_in":28799,"token_type":"Bearer"}`},
			heroku.ClassPermanent},
		// The token endpoint never redirects: what answered is not Heroku.
		{"a redirect", reply{status: 302}, heroku.ClassPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(tokenRoute, tt.reply)
			_, err := newClient(t, s).ExchangeGrant(context.Background(), secret.New(grantCode))
			if got := heroku.Classify(err); got != tt.want {
				t.Errorf("class %v (%v), want %v", got, err, tt.want)
			}
			if unexpected := errors.Is(err, heroku.ErrUnexpectedAnswer); unexpected != (tt.reply.status < 400) {
				t.Errorf("%v: ErrUnexpectedAnswer %v, want it for a 2xx or a 3xx only", err, unexpected)
			}
		})
	}
}

func TestNewClientChecksOptions(t *testing.T) {
	t.Parallel()
	bad := map[string]heroku.Option{
		"relative api url":   heroku.WithAPIURL("api.heroku.com"),
		"api url with creds": heroku.WithAPIURL("https://user:pw@api.heroku.com"),
		"id url with query":  heroku.WithIDURL("https://id.heroku.com/?x=1"),
		"ftp id url":         heroku.WithIDURL("ftp://id.heroku.com"),
		"nil http client":    heroku.WithHTTPClient(nil),
		"empty secret":       heroku.WithOAuthClientSecret(secret.String{}),
		"v1 without id":      heroku.WithV1Credentials("", secret.New("pw")),
		"v1 without pw":      heroku.WithV1Credentials("myaddon", secret.String{}),
		"nil limiter":        heroku.WithLimiter(nil),
		"nil token store":    heroku.WithTokenStore(nil),
		"blank user agent":   heroku.WithUserAgent(" "),
		"nil clock":          heroku.WithClock(nil),
		"negative ahead":     heroku.WithRefreshAhead(-time.Second),
		"nil observer":       heroku.WithObserver(nil),
	}
	for name, opt := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := heroku.NewClient(opt); err == nil {
				t.Error("NewClient accepted bad input")
			}
		})
	}
	if _, err := heroku.NewClient(); err != nil {
		t.Errorf("NewClient() = %v, want defaults to work", err)
	}
}

// expires_in comes as a number of seconds, whole or not, or a string of
// one; a life longer than a day (or one that overflows) is capped, so that
// a token is still refreshed ahead of its end; an unreadable one leaves the
// expiry unknown rather than lose a single-use grant code's token.
func TestTokenLifeForms(t *testing.T) {
	t.Parallel()
	for expiresIn, want := range map[string]time.Duration{
		`28799`: 28799 * time.Second, `28799.0`: 28799 * time.Second, `"28799"`: 28799 * time.Second,
		`10000000000`: 24 * time.Hour, `1e300`: 24 * time.Hour, `"soon"`: 0, `null`: 0, `-5`: 0,
	} {
		s := newScript(t)
		s.on(tokenRoute, reply{status: 200, body: `{"access_token":"HRKU-x","refresh_token":"r-1","expires_in":` + expiresIn + `}`})
		tok, err := newClient(t, s).ExchangeGrant(context.Background(), secret.New(grantCode))
		if err != nil {
			t.Errorf("expires_in %s: %v", expiresIn, err)
			continue
		}
		if got := tok.ExpiresAt; (want == 0 && !got.IsZero()) || (want != 0 && !got.Equal(epoch.Add(want))) {
			t.Errorf("expires_in %s: expires at %v, want %v after the epoch", expiresIn, got, want)
		}
	}
}

// A stored token without a refresh token (an earlier version accepted a
// grant exchange answered without one) cannot be renewed once its access
// token expires: the call fails without asking Heroku, with an error that
// says so and what to do, not that no token is stored.
func TestStoredTokenWithoutRefreshTokenFailsSayingSo(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	expired := heroku.Token{AccessToken: secret.New(accessToken), ExpiresAt: epoch.Add(-time.Minute)}
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, expired)))
	err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
	if !errors.Is(err, heroku.ErrNoRefreshToken) || !errors.Is(err, heroku.ErrNoToken) || !heroku.IsTokenUnusable(err) ||
		!strings.Contains(err.Error(), "no refresh token") {
		t.Errorf("UpdateConfig: %v; want ErrNoRefreshToken, unusable, saying there is no refresh token", err)
	}
	if n := len(s.requests(tokenRoute)) + len(s.requests(patchRoute)); n != 0 {
		t.Errorf("%d calls to Heroku, want none", n)
	}
}

// Only invalid_grant names the add-on's own authorization as revoked
// (ErrTokenRefused: permanent, the add-on cannot be rotated until it is
// registered again). Another 4xx from the token endpoint names no grant: a
// client secret Heroku no longer takes answers every add-on alike, so it
// is ErrTokenDenied, transient, for the breaker to weigh across the fleet.
func TestRefusedRefreshesAreTokenRefusedOnlyOnInvalidGrant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		reply   reply
		refused bool // ErrTokenRefused, else ErrTokenDenied
		class   heroku.Class
	}{
		{"invalid_grant as Heroku's id", reply{status: 400, body: `{"id":"invalid_grant","message":"Invalid OAuth refresh token."}`}, true, heroku.ClassPermanent},
		{"invalid_grant as OAuth's error", reply{status: 400, body: `{"error":"invalid_grant","error_description":"revoked"}`}, true, heroku.ClassPermanent},
		{"bad_request", reply{status: 400, body: `{"id":"bad_request","message":"Bad request."}`}, false, heroku.ClassTransient},
		{"invalid_client", reply{status: 400, body: `{"error":"invalid_client"}`}, false, heroku.ClassTransient},
		{"no body", reply{status: 400}, false, heroku.ClassTransient},
		{"403", reply{status: 403, body: `{"id":"forbidden"}`}, false, heroku.ClassTransient},
		{"invalid_grant with a 403", reply{status: 403, body: `{"error":"invalid_grant"}`}, false, heroku.ClassTransient},
		// Not the token endpoint's answer: a proxy's, every add-on's alike.
		{"a redirect", reply{status: 302}, false, heroku.ClassTransient},
		{"a 200 without a token", reply{status: 200, body: `{"expires_in":28799}`}, false, heroku.ClassTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(tokenRoute, tc.reply)
			expired := heroku.Token{AccessToken: secret.New(accessToken), RefreshToken: secret.New(refreshToken), ExpiresAt: epoch.Add(-time.Minute)}
			err := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, expired))).UpdateConfig(context.Background(), v3Target(), oneVar())
			if errors.Is(err, heroku.ErrTokenRefused) != tc.refused || errors.Is(err, heroku.ErrTokenDenied) == tc.refused ||
				heroku.IsTokenUnusable(err) != tc.refused || heroku.Classify(err) != tc.class {
				t.Errorf("%v: refused %v, denied %v, unusable %v, class %v; want refused %v, class %v", err,
					errors.Is(err, heroku.ErrTokenRefused), errors.Is(err, heroku.ErrTokenDenied), heroku.IsTokenUnusable(err),
					heroku.Classify(err), tc.refused, tc.class)
			}
		})
	}
}

// An access token Heroku answered 401, whose refresh then failed (here a
// 429), is saved as expired: the next call refreshes first instead of
// spending a Platform API call on a token known to be refused.
func TestRefusedTokenIsNotUsedAgainAfterAFailedRefresh(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	s.on(patchRoute, reply{status: 401, body: `{"id":"unauthorized"}`})
	s.on(tokenRoute, reply{status: 429}, reply{status: 429})
	tokens := newMemTokens(addonID, validToken())
	c := newClient(t, s, heroku.WithTokenStore(tokens))
	ctx := context.Background()
	for i := range 2 {
		if err := c.UpdateConfig(ctx, v3Target(), oneVar()); !heroku.IsRateLimited(err) {
			t.Fatalf("call %d: %v; want the token endpoint's 429", i, err)
		}
	}
	if n := len(s.requests(patchRoute)); n != 1 {
		t.Errorf("%d PATCHes; want 1, none with the token Heroku refused", n)
	}
	// The memory is the process's: the stored token is left as it was.
	if got, _ := tokens.get(addonID); got.AccessToken.Reveal() != accessToken || got.RefreshToken.Reveal() != refreshToken ||
		!got.ExpiresAt.Equal(validToken().ExpiresAt) {
		t.Errorf("stored token changed (expires %v); want it as it was", got.ExpiresAt)
	}
}

// reRegistering is a TokenStore whose add-on is registered again (new
// tokens saved) right after a call loaded the old token.
type reRegistering struct {
	mu        sync.Mutex
	tok, next heroku.Token
	loaded    bool
}

func (r *reRegistering) LoadToken(context.Context, string) (heroku.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tok
	if !r.loaded {
		r.loaded, r.tok = true, r.next
	}
	return t, nil
}

func (r *reRegistering) SaveToken(_ context.Context, _ string, t heroku.Token) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tok = t
	return nil
}

// The partner registers the add-on again while a call holds its revoked
// token: the call's 401 and failed refresh leave the new registration's
// tokens stored, and the next call uses them at once.
func TestFailedRefreshLeavesATokenSavedMeanwhile(t *testing.T) {
	t.Parallel()
	for _, r := range []reply{{status: 400, body: `{"error":"invalid_grant"}`}, {status: 429}, {status: 503, body: "down"}} {
		t.Run(strconv.Itoa(r.status), func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(patchRoute, reply{status: 401, body: `{"id":"unauthorized"}`}, reply{status: 200, body: `[{"name":"MYADDON_URL","value":"v"}]`})
			s.on(tokenRoute, r)
			next := heroku.Token{AccessToken: secret.New("HRKU-registered-again"), RefreshToken: secret.New("refresh-registered-again"),
				ExpiresAt: epoch.Add(8 * time.Hour)}
			store := &reRegistering{tok: validToken(), next: next}
			c := newClient(t, s, heroku.WithTokenStore(store))
			if err := c.UpdateConfig(context.Background(), v3Target(), oneVar()); err == nil {
				t.Fatal("the call with the revoked token succeeded")
			}
			if got := store.tok; got.RefreshToken.Reveal() != "refresh-registered-again" {
				t.Fatalf("stored refresh token %q after the failed refresh; want the new registration's", got.RefreshToken.Reveal())
			}
			_ = c.UpdateConfig(context.Background(), v3Target(), oneVar())
			if n := len(s.requests(tokenRoute)); n != 1 {
				t.Errorf("%d token calls; want the new registration's token used without a refresh", n)
			}
		})
	}
}

// beforeFirstLoad is a TokenStore that runs then once, right after its
// first load: another process's call made while this one holds the token
// it loaded.
type beforeFirstLoad struct {
	*memTokens
	once sync.Once
	then func()
}

func (b *beforeFirstLoad) LoadToken(ctx context.Context, id string) (heroku.Token, error) {
	t, err := b.memTokens.LoadToken(ctx, id)
	b.once.Do(b.then)
	return t, err
}

// A refresh token replaced while a call refreshed it is no revoked
// authorization: Heroku's invalid_grant to it says only that the token
// refreshed is no longer good. Another process refreshed it first from a
// token endpoint that rotates refresh tokens (and refuses the old one
// after), or the partner registered the add-on again with a new grant.
// The call fails as transient and the next one uses the token stored;
// read as ErrTokenRefused, the rotation failed for good and its instance
// was set aside with "register it again", its token good.
func TestRefusedRefreshOfATokenReplacedMeanwhileIsNoRevocation(t *testing.T) {
	t.Parallel()
	expired := heroku.Token{AccessToken: secret.New(accessToken), RefreshToken: secret.New(refreshToken), ExpiresAt: epoch.Add(-time.Minute)}
	refused := reply{status: 400, body: `{"error":"invalid_grant","error_description":"refresh token already used"}`}
	check := func(t *testing.T, err error, tokens heroku.TokenStore, s *script) {
		t.Helper()
		if err == nil || errors.Is(err, heroku.ErrTokenRefused) || heroku.IsTokenUnusable(err) || !heroku.IsTransient(err) {
			t.Fatalf("%v: refused %v, unusable %v, class %v; want a transient failure", err,
				errors.Is(err, heroku.ErrTokenRefused), heroku.IsTokenUnusable(err), heroku.Classify(err))
		}
		for _, sec := range append(allSecrets, "refresh-rotated-1", "HRKU-registered-again") {
			if strings.Contains(err.Error(), sec) {
				t.Errorf("error holds a token: %v", err)
			}
		}
		// The next call uses the token stored, without a refresh.
		before := len(s.requests(tokenRoute))
		s.on(patchRoute, reply{status: 200, body: okConfig})
		c := newClient(t, s, heroku.WithTokenStore(tokens))
		if err := c.UpdateConfig(context.Background(), v3Target(), oneVar()); err != nil {
			t.Fatalf("next call: %v", err)
		}
		if n := len(s.requests(tokenRoute)); n != before {
			t.Errorf("%d token calls more; want the stored token used", n-before)
		}
	}
	t.Run("refreshed by another process", func(t *testing.T) {
		t.Parallel()
		s := newScript(t)
		s.on(tokenRoute, reply{status: 200, body: `{"access_token":"` + freshAccess + `","expires_in":28799,"refresh_token":"refresh-rotated-1"}`}, refused)
		s.on(patchRoute, reply{status: 200, body: okConfig})
		shared := newMemTokens(addonID, expired)
		other := newClient(t, s, heroku.WithTokenStore(shared))
		tokens := &beforeFirstLoad{memTokens: shared, then: func() {
			if err := other.UpdateConfig(context.Background(), v3Target(), oneVar()); err != nil {
				t.Errorf("the other process's call: %v", err)
			}
		}}
		err := newClient(t, s, heroku.WithTokenStore(tokens)).UpdateConfig(context.Background(), v3Target(), oneVar())
		check(t, err, shared, s)
	})
	t.Run("registered again", func(t *testing.T) {
		t.Parallel()
		s := newScript(t)
		s.on(tokenRoute, refused)
		next := heroku.Token{AccessToken: secret.New("HRKU-registered-again"), RefreshToken: secret.New("refresh-registered-again"),
			ExpiresAt: epoch.Add(8 * time.Hour)}
		tokens := &reRegistering{tok: expired, next: next}
		err := newClient(t, s, heroku.WithTokenStore(tokens)).UpdateConfig(context.Background(), v3Target(), oneVar())
		check(t, err, tokens, s)
	})
}
