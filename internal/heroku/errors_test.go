package heroku_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(status int) error { return &heroku.APIError{Status: status, Endpoint: heroku.EndpointPatchConfig} }
	tests := []struct {
		name string
		err  error
		want heroku.Class
	}{
		{"nil", nil, heroku.ClassNone},
		{"429", &heroku.RateLimitError{Remaining: 0}, heroku.ClassRateLimited},
		{"wrapped 429", fmt.Errorf("push: %w", &heroku.RateLimitError{}), heroku.ClassRateLimited},
		{"500", api(500), heroku.ClassTransient},
		{"503", api(503), heroku.ClassTransient},
		{"408", api(408), heroku.ClassTransient},
		{"409", api(409), heroku.ClassTransient},
		{"401", api(401), heroku.ClassUnauthorized},
		{"403", api(403), heroku.ClassGone},
		{"404", api(404), heroku.ClassGone},
		{"410", api(410), heroku.ClassGone},
		{"400", api(400), heroku.ClassPermanent},
		{"402", api(402), heroku.ClassPermanent},
		{"406", api(406), heroku.ClassPermanent},
		{"422", api(422), heroku.ClassPermanent},
		{"302", api(302), heroku.ClassPermanent},
		{"no token", fmt.Errorf("load: %w", heroku.ErrNoToken), heroku.ClassPermanent},
		{"not configured", heroku.ErrNotConfigured, heroku.ClassPermanent},
		{"invalid request", heroku.ErrInvalidRequest, heroku.ClassPermanent},
		{"transport", &heroku.TransportError{Endpoint: "v1_put", Err: errors.New("connection refused")}, heroku.ClassTransient},
		{"call timeout", &heroku.TransportError{Endpoint: "v1_put", Err: context.DeadlineExceeded}, heroku.ClassTransient},
		{"caller deadline", fmt.Errorf("heroku v1_put: %w", context.DeadlineExceeded), heroku.ClassCanceled},
		{"caller canceled", fmt.Errorf("heroku v1_put: %w", context.Canceled), heroku.ClassCanceled},
		{"unknown", errors.New("redis: connection pool timeout"), heroku.ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := heroku.Classify(tt.err)
			if got != tt.want {
				t.Fatalf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if heroku.IsTransient(tt.err) != (got == heroku.ClassTransient || got == heroku.ClassRateLimited) ||
				heroku.IsRateLimited(tt.err) != (got == heroku.ClassRateLimited) ||
				heroku.IsGone(tt.err) != (got == heroku.ClassGone) ||
				heroku.IsPermanent(tt.err) != (got == heroku.ClassPermanent || got == heroku.ClassUnauthorized || got == heroku.ClassGone) {
				t.Errorf("predicates disagree with class %v", got)
			}
		})
	}
}

// A request that times out on its own is transient; a caller that gives up
// is canceled. Neither waits on a sleep: the handler blocks until the
// request ends.
func TestTimeoutsAndCancellation(t *testing.T) {
	t.Parallel()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		ctx     context.Context
		want    heroku.Class
	}{
		{"call timeout", hang.URL, 50 * time.Millisecond, context.Background(), heroku.ClassTransient},
		{"connection refused", closed.URL, time.Minute, context.Background(), heroku.ClassTransient},
		{"caller canceled", hang.URL, time.Minute, canceled, heroku.ClassCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := heroku.NewClient(heroku.WithAPIURL(tt.url), heroku.WithHTTPClient(&http.Client{Timeout: tt.timeout}),
				heroku.WithV1Credentials("myaddon", secret.New(v1Password)))
			if err != nil {
				t.Fatal(err)
			}
			err = c.UpdateConfig(tt.ctx, v1Target(), oneVar())
			if got := heroku.Classify(err); got != tt.want {
				t.Errorf("class %v (%v), want %v", got, err, tt.want)
			}
			if strings.Contains(err.Error(), tt.url) {
				t.Errorf("error %q names the URL", err)
			}
		})
	}
}

// Every error the client can produce, rendered every way, holds none of the
// secrets it was handed, even when Heroku echoes back what it received.
func TestErrorsNeverContainSecrets(t *testing.T) {
	t.Parallel()
	echoV3 := `{"id":"invalid_params","message":"bad value ` + configValue + ` for token ` + accessToken + `"}`
	echoV1 := `{"id":"invalid_params","message":"bad value ` + configValue + ` for ` + v1Password + `"}`
	echoRefresh := `{"id":"bad_request","message":"` + refreshToken + " " + clientSecret + `"}`
	echoGrant := `{"id":"bad_request","message":"` + grantCode + " " + clientSecret + `"}`
	s := newScript(t)
	s.on(patchRoute, reply{status: 422, body: echoV3}, reply{status: 429}, reply{status: 401, body: echoV3})
	s.on(tokenRoute, reply{status: 400, body: echoRefresh}, reply{status: 401, body: echoGrant})
	s.on(v1Route, reply{status: 401, body: echoV1}, reply{status: 404, body: echoV1}, reply{status: 503, body: echoV1})
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	ctx := context.Background()

	var errs []error
	for range 3 {
		errs = append(errs, c.UpdateConfig(ctx, v3Target(), oneVar()))
	}
	_, err := c.ExchangeGrant(ctx, secret.New(grantCode))
	errs = append(errs, err)
	for range 3 {
		errs = append(errs, c.UpdateConfig(ctx, v1Target(), oneVar()))
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	errs = append(errs, c.UpdateConfig(canceled, v1Target(), oneVar()))

	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d succeeded, want an error", i)
		}
		for _, out := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			for _, sec := range allSecrets {
				if strings.Contains(out, sec) {
					t.Errorf("error %d leaks %q: %s", i, sec, out)
				}
			}
		}
	}
}

// Only a 4xx, a 429 included, shows that a push took no effect; a 5xx, a
// 408 (a front's timeout after passing the push on), a redirect or no
// answer leaves it unknown.
func TestRefused(t *testing.T) {
	t.Parallel()
	api := func(status int) error { return &heroku.APIError{Status: status, Endpoint: heroku.EndpointPatchConfig} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"422", api(422), true},
		{"403", fmt.Errorf("push: %w", api(403)), true},
		{"429", &heroku.RateLimitError{}, true},
		{"500", api(500), false},
		{"503", api(503), false},
		{"408", api(408), false},
		{"302", api(302), false},
		{"call timeout", &heroku.TransportError{Endpoint: "v3_patch", Err: context.DeadlineExceeded}, false},
		{"reset", &heroku.TransportError{Endpoint: "v3_patch", Err: errors.New("connection reset by peer")}, false},
		{"caller deadline", fmt.Errorf("heroku v3_patch: %w", context.DeadlineExceeded), false},
	} {
		if got := heroku.Refused(tc.err); got != tc.want {
			t.Errorf("Refused(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A read of the config answers with the app's live credentials, which the
// client was never handed and cannot remove from an error; a refused change
// of the config may quote them, or quote the value sent cut short, which no
// scrubber of whole values finds; and a 5xx comes as often from a router or
// proxy as from Heroku, its text whatever it was handed. None of these
// answers' messages is kept, only the status, Heroku's id and request id;
// a 4xx's message to another call is, since it says what to do.
func TestErrorMessagesThatMayHoldTheAppsSecretsAreDropped(t *testing.T) {
	t.Parallel()
	const live = "postgres://u:live-secret-of-the-app@db/x"
	echo := `{"id":"internal_server_error","message":"config was DATABASE_URL=` + live + `"}`
	s := newScript(t)
	s.on("GET /addons/"+addonID+"/config", reply{status: 503, body: echo}, reply{status: 404, body: echo})
	s.on(patchRoute, reply{status: 500, body: echo},
		reply{status: 409, body: `{"id":"conflict","message":"MYADDON_URL is now ` + live + `"}`},
		reply{status: 422, body: `{"id":"invalid_params","message":"cannot change ` + live + `"}`},
		reply{status: 409, body: `{"id":"conflict","message":"conflicting value postgres://u:live-secret-of-th…"}`})
	s.on(v1Route, reply{status: 422, body: `{"id":"invalid_params","message":"config was ` + live + `"}`})
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())),
		heroku.WithV1Credentials("myaddon", secret.New(v1Password)))
	ctx := context.Background()
	var errs []error
	for range 2 {
		_, err := c.GetConfig(ctx, v3Target())
		errs = append(errs, err)
	}
	for range 4 {
		errs = append(errs, c.UpdateConfig(ctx, v3Target(), oneVar()))
	}
	errs = append(errs, c.UpdateConfig(ctx, v1Target(), oneVar()))
	for i, err := range errs {
		if err == nil || strings.Contains(fmt.Sprintf("%v %#v", err, err), "live-secret") {
			t.Errorf("error %d: %v; want one without the echoed config", i, err)
		}
	}
	if err := errs[3]; !strings.Contains(err.Error(), "status 409 conflict") {
		t.Errorf("a 409 to a push: %v, want its status and Heroku's id kept", err)
	}

	s.on("GET /addons/"+addonID, reply{status: 403, body: `{"id":"forbidden","message":"You do not have access to the add-on."}`})
	if _, err := c.AddonState(ctx, v3Target()); err == nil || !strings.Contains(err.Error(), "You do not have access to the add-on.") {
		t.Errorf("a 403's message to a read of the add-on: %v, want it kept", err)
	}
}

// A party that echoes a secret may echo it cut short ("refresh token
// refresh-7c6b…"), which no search for the whole value finds. The token
// endpoint's and the add-on read's 4xx messages are kept, so a cut of the
// request's refresh token, grant code, client secret or access token must
// not pass through them.
func TestErrorsKeepNoCutOfTheRequestsSecrets(t *testing.T) {
	t.Parallel()
	cut := func(s string) string { return s[:len(s)-3] + "…" }
	s := newScript(t)
	s.on(tokenRoute,
		reply{status: 400, body: `{"error":"invalid_grant","message":"refresh token ` + cut(refreshToken) + ` has expired"}`},
		reply{status: 400, body: `{"id":"bad_request","message":"code ` + cut(grantCode) + ` for client ` + cut(clientSecret) + `"}`})
	s.on("GET /addons/"+addonID, reply{status: 403, body: `{"id":"forbidden","message":"token ` + accessToken[3:15] + ` may not read this add-on"}`})
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	ctx := context.Background()

	var errs []error
	_, err := c.Refresh(ctx, secret.New(refreshToken))
	errs = append(errs, err)
	_, err = c.ExchangeGrant(ctx, secret.New(grantCode))
	errs = append(errs, err)
	_, err = c.AddonState(ctx, v3Target())
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d succeeded, want an error", i)
		}
		out := fmt.Sprintf("%v %#v", err, err)
		for _, sec := range allSecrets {
			for at := 0; at+8 <= len(sec); at++ {
				if strings.Contains(out, sec[at:at+8]) {
					t.Errorf("error %d keeps %q of a secret: %s", i, sec[at:at+8], out)
					break
				}
			}
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("error %d: %s; want the message kept with the cut secret redacted", i, out)
		}
	}
}

// A front between rekey and Heroku (a proxy, a broken or hostile stand-in)
// sees every call, so its Request-Id may quote what another call carried:
// the app's live credentials, which a read of the config answers with and
// a call to the config endpoints was never handed, or the add-on's tokens
// from the call before. The config endpoints keep no request id at all;
// any other call scrubs every token of the add-on's it has held, its
// refresh token and the access token a refresh replaced included, and keeps
// a request id that quotes none of them.
func TestRequestIDsThatMayQuoteWhatTheCallNeverHeldAreDropped(t *testing.T) {
	t.Parallel()
	const livePassword = "c41d7e0a-9b2f-4e63-8a15-d07f3b6e92c8" // the app's, shaped as Heroku's ids are
	const herokus = "7d3e9f20-61b8-4c55-a0e4-2b9c8d7f6a13"
	// stale is an access token that shares no run of bytes with the
	// one its refresh brings (freshAccess), so only its own value
	// scrubs it.
	const stale = "e8b64f1d27a9c053"
	staleToken := validToken()
	staleToken.AccessToken = secret.New(stale)
	unavailable := func(id string) reply {
		return reply{status: 503, body: `{"id":"unavailable"}`, header: map[string]string{"Request-Id": id}}
	}
	addonRoute := "GET /addons/" + addonID
	type run func(*heroku.Client) error
	for _, tc := range []struct {
		name   string
		script func(*script)
		call   run
		keeps  string // the request id the error keeps, "" for none
		token  *heroku.Token
	}{
		{"v3 read of the config", func(s *script) { s.on("GET /addons/"+addonID+"/config", unavailable(livePassword)) },
			func(c *heroku.Client) error { _, err := c.GetConfig(context.Background(), v3Target()); return err }, "", nil},
		{"v3 push", func(s *script) { s.on(patchRoute, unavailable(livePassword)) },
			func(c *heroku.Client) error { return c.UpdateConfig(context.Background(), v3Target(), oneVar()) }, "", nil},
		{"v1 read of the config", func(s *script) { s.on(v1GetRoute, unavailable(livePassword)) },
			func(c *heroku.Client) error { _, err := c.GetConfig(context.Background(), v1Target()); return err }, "", nil},
		{"v1 push", func(s *script) { s.on(v1Route, unavailable(livePassword)) },
			func(c *heroku.Client) error { return c.UpdateConfig(context.Background(), v1Target(), oneVar()) }, "", nil},
		{"a push's request id of Heroku's form", func(s *script) { s.on(patchRoute, unavailable(herokus)) },
			func(c *heroku.Client) error { return c.UpdateConfig(context.Background(), v3Target(), oneVar()) }, "", nil},
		{"the add-on's refresh token", func(s *script) { s.on(addonRoute, unavailable(refreshToken)) },
			func(c *heroku.Client) error { _, err := c.AddonState(context.Background(), v3Target()); return err }, "", nil},
		{"the access token a refresh replaced", func(s *script) {
			s.on(addonRoute, reply{status: 401, body: `{"id":"unauthorized"}`}, unavailable(stale))
			s.on(tokenRoute, reply{status: 200, body: tokenBody})
		}, func(c *heroku.Client) error { _, err := c.AddonState(context.Background(), v3Target()); return err }, "", &staleToken},
		{"a read of the add-on", func(s *script) { s.on(addonRoute, unavailable(herokus)) },
			func(c *heroku.Client) error { _, err := c.AddonState(context.Background(), v3Target()); return err }, herokus, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			tc.script(s)
			token := validToken()
			if tc.token != nil {
				token = *tc.token
			}
			err := tc.call(newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, token))))
			var api *heroku.APIError
			if !errors.As(err, &api) || api.Status != 503 {
				t.Fatalf("err = %v, want a 503", err)
			}
			if api.RequestID != tc.keeps {
				t.Errorf("request id kept %q, want %q", api.RequestID, tc.keeps)
			}
			out := fmt.Sprintf("%v %#v", err, err)
			for _, sec := range append([]string{livePassword, stale}, allSecrets...) {
				if strings.Contains(out, sec) {
					t.Errorf("error quotes %q: %s", sec, out)
				}
			}
		})
	}
}

// The token endpoint's 4xx message is kept, to say why a refresh failed;
// the access token Heroku just refused, which the call before the refresh
// carried, is scrubbed from it as the refresh token is.
func TestARefusedRefreshQuotesNotTheTokenItReplaces(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	s.on("GET /addons/"+addonID, reply{status: 401, body: `{"id":"unauthorized"}`})
	s.on(tokenRoute, reply{status: 400, body: `{"error":"invalid_request","message":"token ` + accessToken + ` was not issued to this client"}`})
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	_, err := c.AddonState(context.Background(), v3Target())
	if err == nil || !strings.Contains(err.Error(), "was not issued to this client") {
		t.Fatalf("err = %v, want the token endpoint's message", err)
	}
	if out := fmt.Sprintf("%v %#v", err, err); strings.Contains(out, accessToken) || strings.Contains(out, accessToken[:12]) {
		t.Errorf("the refused refresh quotes the access token it replaces: %s", out)
	}
}

// A call to the config endpoints that gets no answer keeps none of Go's
// text about the connection: a TLS front that saw the app's config can
// present a certificate valid for a name that is the app's live password,
// which Go's verification error names unquoted. The error says what kind
// of failure it was, and a timeout stays one.
func TestAConfigCallWithoutAnAnswerQuotesNothingOfTheServer(t *testing.T) {
	t.Parallel()
	const live = "c41d7e0a-9b2f-4e63-8a15-d07f3b6e92c8"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{live},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewUnstartedServer(http.NotFoundHandler())
	front.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	front.StartTLS()
	t.Cleanup(front.Close)
	roots := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	roots.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	u := strings.Replace(front.URL, "127.0.0.1", "localhost", 1)
	c, err := heroku.NewClient(heroku.WithAPIURL(u), heroku.WithIDURL(u), heroku.WithHTTPClient(hc),
		heroku.WithClock(func() time.Time { return epoch }), heroku.WithOAuthClientSecret(secret.New(clientSecret)),
		heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetConfig(context.Background(), v3Target())
	if out := fmt.Sprintf("%v %+v", err, err); err == nil || strings.Contains(out, live) || !strings.Contains(out, "TLS handshake failed") {
		t.Errorf("a read of the config through the front: %s; want the TLS failure without the certificate's name", out)
	}
	if heroku.Classify(err) != heroku.ClassTransient {
		t.Errorf("class %v, want transient", heroku.Classify(err))
	}
	// The same front answering a call that is no config call keeps Go's
	// text, which names what was wrong.
	if _, err := c.AddonState(context.Background(), v3Target()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a read of the add-on through the front: %v, want Go's text kept", err)
	}

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
	}))
	t.Cleanup(slow.Close)
	c, err = heroku.NewClient(heroku.WithAPIURL(slow.URL), heroku.WithIDURL(slow.URL),
		heroku.WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}),
		heroku.WithClock(func() time.Time { return epoch }), heroku.WithOAuthClientSecret(secret.New(clientSecret)),
		heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	if err != nil {
		t.Fatal(err)
	}
	err = c.UpdateConfig(context.Background(), v3Target(), oneVar())
	if !errors.Is(err, context.DeadlineExceeded) || heroku.Classify(err) != heroku.ClassTransient ||
		!strings.Contains(err.Error(), "timeout") {
		t.Errorf("a push that timed out: %v (class %v), want a transient timeout", err, heroku.Classify(err))
	}
}

// The token refresh a call to the config endpoints makes first (its token
// about to expire, or refused 401) is that call's: its error keeps no
// message, request id or unknown error id either, since the push or read
// returns it as its own.
func TestARefreshForAConfigCallQuotesNothing(t *testing.T) {
	t.Parallel()
	const live = "c41d7e0a-9b2f-4e63-8a15-d07f3b6e92c8"
	expiring := validToken()
	expiring.ExpiresAt = epoch.Add(-time.Minute)
	for name, rep := range map[string]reply{
		"a 4xx message": {status: 400, body: `{"error":"invalid_request","message":"seen ` + live + `"}`},
		"a 5xx":         {status: 503, body: `{}`, header: map[string]string{"Request-Id": live}},
		"a 429":         {status: 429, body: `{}`, header: map[string]string{"Request-Id": live}},
		"an unknown id": {status: 400, body: `{"error":"hunter","message":"x"}`},
		"invalid_grant": {status: 400, body: `{"error":"invalid_grant","message":"seen ` + live + `"}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(tokenRoute, rep)
			c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, expiring)))
			err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
			out := fmt.Sprintf("%v %+v", err, err)
			if err == nil || strings.Contains(out, live) || strings.Contains(out, "hunter") {
				t.Errorf("the push's error: %s; want one quoting nothing of the token endpoint's", out)
			}
			if name == "invalid_grant" && !errors.Is(err, heroku.ErrTokenRefused) {
				t.Errorf("invalid_grant: %v, want ErrTokenRefused: the error id is kept", err)
			}
		})
	}
}

// A token refreshed ahead of its expiry is scrubbed from the call made
// with the new one, as one refreshed after a 401 is, and from a second
// refresh's answer when that call is refused 401: it is still good until
// it expires.
func TestARefreshAheadOfExpiryScrubsTheTokenItReplaced(t *testing.T) {
	t.Parallel()
	const stale = "e8b64f1d27a9c053"
	for name, tc := range map[string]struct {
		addon, token []reply
		want         string
	}{
		"the call": {[]reply{{status: 503, body: `{"id":"unavailable"}`, header: map[string]string{"Request-Id": stale}}},
			[]reply{{status: 200, body: tokenBody}}, "status 503"},
		"a second refresh": {[]reply{{status: 401, body: `{"id":"unauthorized"}`}},
			[]reply{{status: 200, body: tokenBody},
				{status: 400, body: `{"error":"invalid_request","message":"token ` + stale + ` was not issued to this client"}`}},
			"was not issued"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			old := validToken()
			old.AccessToken, old.ExpiresAt = secret.New(stale), epoch.Add(-time.Minute)
			s := newScript(t)
			s.on(tokenRoute, tc.token...)
			s.on("GET /addons/"+addonID, tc.addon...)
			c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, old)))
			_, err := c.AddonState(context.Background(), v3Target())
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(fmt.Sprintf("%v %#v", err, err), stale) {
				t.Errorf("%v; want %q without the token the refresh replaced", err, tc.want)
			}
		})
	}
}

// The error ids Heroku sends to a push are kept on the config endpoints,
// where an unknown word is not: they make the failure code.
func TestAPushKeepsHerokusErrorIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"gone", "conflict", "invalid_params", "not_found", "forbidden"} {
		s := newScript(t)
		s.on(patchRoute, reply{status: 410, body: `{"id":"` + id + `","message":"x"}`})
		err := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken()))).UpdateConfig(context.Background(), v3Target(), oneVar())
		var api *heroku.APIError
		if !errors.As(err, &api) || api.ID != id {
			t.Errorf("a push answered %q: %v, want the id kept", id, err)
		}
	}
}
