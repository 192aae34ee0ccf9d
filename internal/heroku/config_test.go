package heroku_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

func TestUpdateConfigV3SendsOneCall(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	both := `[{"name":"MYADDON_HOST","value":"db.myaddon.example"},{"name":"MYADDON_URL","value":"` + configValue + `"},{"name":"OTHER","value":null}]`
	s.on(patchRoute, reply{status: 200, body: both, header: map[string]string{"RateLimit-Remaining": "4321", "Request-Id": "r1"}})
	lim := &countingLimiter{}
	var infos []heroku.CallInfo
	c := newClient(t, s, heroku.WithLimiter(lim), heroku.WithTokenStore(newMemTokens(addonID, validToken())),
		heroku.WithObserver(func(ci heroku.CallInfo) { infos = append(infos, ci) }))

	vars := append(oneVar(), heroku.ConfigVar{Name: "MYADDON_HOST", Value: secret.New("db.myaddon.example")})
	if err := c.UpdateConfig(context.Background(), v3Target(), vars); err != nil {
		t.Fatal(err)
	}
	reqs := s.requests(patchRoute)
	if len(reqs) != 1 {
		t.Fatalf("got %d PATCH requests, want 1", len(reqs))
	}
	r := reqs[0]
	checkHeader(t, r, "Accept", heroku.V3Accept)
	checkHeader(t, r, "Authorization", "Bearer "+accessToken)
	checkHeader(t, r, "Content-Type", "application/json")
	var body struct {
		Config []struct{ Name, Value string } `json:"config"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(body.Config) != 2 ||
		body.Config[0].Name != "MYADDON_URL" || body.Config[0].Value != configValue {
		t.Errorf("body = %s (err %v)", r.body, err)
	}
	if lim.waits != 1 || len(lim.observed) != 1 || lim.observed[0] != 200 {
		t.Errorf("limiter waits=%d observed=%v, want 1 and [200]", lim.waits, lim.observed)
	}
	if len(infos) != 1 || infos[0].Endpoint != heroku.EndpointPatchConfig || infos[0].Status != 200 || infos[0].Remaining != 4321 {
		t.Errorf("observer got %+v", infos)
	}
}

// A 2xx to a config update is Heroku's only when it holds the config
// sent: the add-on's resulting config vars, each sent var with the value
// sent. Any other 2xx (a page, an empty or cut body, a config without
// them) is ErrUnexpectedAnswer, a permanent failure that does not say
// Heroku refused; so is a read-back whose 2xx body is no config.
func TestUpdateConfigV3ChecksTheAnswerHoldsTheConfig(t *testing.T) {
	t.Parallel()
	vars := oneVar()
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"the config", okConfig, true},
		{"the config among others", `[{"name":"A","value":"x"},{"name":"MYADDON_URL","value":"` + configValue + `"}]`, true},
		{"a page", "<html><body>Welcome to nginx!</body></html>", false},
		{"empty", "", false},
		{"an empty array", "[]", false},
		{"an object", `{"config":[{"name":"MYADDON_URL","value":"` + configValue + `"}]}`, false},
		{"the old value", `[{"name":"MYADDON_URL","value":"postgres://old"}]`, false},
		{"a null value", `[{"name":"MYADDON_URL","value":null}]`, false},
		{"another var", `[{"name":"MYADDON_URI","value":"` + configValue + `"}]`, false},
		{"cut short", `[{"name":"MYADDON_URL","value":"` + configValue, false},
	} {
		s := newScript(t)
		s.on(patchRoute, reply{status: 200, body: tc.body})
		c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
		err := c.UpdateConfig(context.Background(), v3Target(), vars)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, heroku.ErrUnexpectedAnswer) || heroku.Classify(err) != heroku.ClassPermanent || heroku.Refused(err) {
			t.Errorf("%s: %v (class %s, refused %v); want a permanent ErrUnexpectedAnswer, not a refusal",
				tc.name, err, heroku.Classify(err), heroku.Refused(err))
		}
		if err != nil && strings.Contains(err.Error(), configValue) {
			t.Errorf("%s: the error holds the value sent: %v", tc.name, err)
		}
	}
	s := newScript(t)
	s.on("GET /addons/"+addonID+"/config", reply{status: 200, body: "<html>Welcome to nginx!</html>"})
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	if _, err := c.GetConfig(context.Background(), v3Target()); !errors.Is(err, heroku.ErrUnexpectedAnswer) ||
		heroku.Classify(err) != heroku.ClassPermanent {
		t.Errorf("a page read back: %v; want a permanent ErrUnexpectedAnswer", err)
	}
}

func checkHeader(t *testing.T, r request, name, want string) {
	t.Helper()
	if got := r.header.Get(name); got != want {
		t.Errorf("%s header = %q, want %q", name, got, want)
	}
}

// The client never retries: a script of 429, 500, 200 takes three calls,
// each sending exactly one request.
func TestUpdateConfigScriptedFailuresAreNotRetried(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	s.on(patchRoute,
		reply{status: 429, body: `{"id":"rate_limit","message":"Your account reached the API rate limit"}`,
			header: map[string]string{"RateLimit-Remaining": "0", "Request-Id": "r429"}},
		reply{status: 500, body: `{"id":"internal_server_error","message":"boom"}`},
		reply{status: 200, body: okConfig})
	lim := &countingLimiter{}
	c := newClient(t, s, heroku.WithLimiter(lim), heroku.WithTokenStore(newMemTokens(addonID, validToken())))

	want := []heroku.Class{heroku.ClassRateLimited, heroku.ClassTransient, heroku.ClassNone}
	for i, w := range want {
		err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
		if got := heroku.Classify(err); got != w {
			t.Errorf("call %d: class %v (%v), want %v", i, got, err, w)
		}
		if n := len(s.requests(patchRoute)); n != i+1 {
			t.Errorf("after call %d: %d requests, want %d", i, n, i+1)
		}
	}
	var rl *heroku.RateLimitError
	s.on(patchRoute, reply{status: 429, header: map[string]string{"RateLimit-Remaining": "0", "Retry-After": "7", "Request-Id": "r2"}})
	err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
	if !errors.As(err, &rl) || rl.Remaining != 0 || rl.RetryAfter != 7*time.Second || rl.RequestID != "" {
		t.Errorf("err = %#v, want RateLimitError with remaining 0, retry after 7s and no request id (a push's keeps none)", err)
	}
	if lim.waits != 4 || len(lim.observed) != 4 {
		t.Errorf("limiter waits=%d observed=%v, want 4 each", lim.waits, lim.observed)
	}
}

func TestUpdateConfigRefreshesOnceAfter401(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		replies   []reply
		wantClass heroku.Class
	}{
		{"retry succeeds", []reply{{status: 401, body: `{"id":"unauthorized"}`}, {status: 200, body: okConfig}}, heroku.ClassNone},
		{"retry refused", []reply{{status: 401, body: `{"id":"unauthorized"}`}, {status: 401, body: `{"id":"unauthorized"}`}}, heroku.ClassUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(patchRoute, tt.replies...)
			s.on(tokenRoute, reply{status: 200, body: tokenBody})
			tokens := newMemTokens(addonID, validToken())
			c := newClient(t, s, heroku.WithTokenStore(tokens), heroku.WithLimiter(&countingLimiter{}))

			err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
			if got := heroku.Classify(err); got != tt.wantClass {
				t.Fatalf("class %v (%v), want %v", got, err, tt.wantClass)
			}
			patches, refreshes := s.requests(patchRoute), s.requests(tokenRoute)
			if len(patches) != 2 || len(refreshes) != 1 {
				t.Fatalf("%d PATCH and %d refresh requests, want 2 and 1", len(patches), len(refreshes))
			}
			checkHeader(t, patches[1], "Authorization", "Bearer "+freshAccess)
			if saved, _ := tokens.get(addonID); saved.AccessToken.Reveal() != freshAccess {
				t.Error("refreshed token was not saved")
			}
		})
	}
}

func TestUpdateConfigRefreshesAheadOfExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		token       heroku.Token
		wantRefresh bool
	}{
		{"fresh", validToken(), false},
		{"unknown expiry", heroku.Token{AccessToken: secret.New(accessToken), RefreshToken: secret.New(refreshToken)}, false},
		{"expires within refresh-ahead", withExpiry(epoch.Add(4 * time.Minute)), true},
		{"expired", withExpiry(epoch.Add(-time.Minute)), true},
		{"no access token", heroku.Token{RefreshToken: secret.New(refreshToken)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(patchRoute, reply{status: 200, body: okConfig})
			s.on(tokenRoute, reply{status: 200, body: `{"access_token":"` + freshAccess + `","expires_in":28799}`})
			tokens := newMemTokens(addonID, tt.token)
			c := newClient(t, s, heroku.WithTokenStore(tokens))

			if err := c.UpdateConfig(context.Background(), v3Target(), oneVar()); err != nil {
				t.Fatal(err)
			}
			if got := len(s.requests(tokenRoute)) == 1; got != tt.wantRefresh {
				t.Fatalf("refreshed = %v, want %v", got, tt.wantRefresh)
			}
			if !tt.wantRefresh {
				return
			}
			checkHeader(t, s.requests(patchRoute)[0], "Authorization", "Bearer "+freshAccess)
			saved, saves := tokens.get(addonID)
			if saves != 1 || !saved.ExpiresAt.Equal(epoch.Add(28799*time.Second)) || saved.RefreshToken.Reveal() != refreshToken {
				t.Errorf("saved %d times, expires %v, refresh token kept %v", saves, saved.ExpiresAt, saved.RefreshToken.Reveal() == refreshToken)
			}
		})
	}
}

func withExpiry(at time.Time) heroku.Token {
	t := validToken()
	t.ExpiresAt = at
	return t
}

// V1's answer to a config update has no documented body, so only its kind
// is checked: a page (HTML or XHTML), which no Heroku API answers, is
// ErrUnexpectedAnswer whatever its status, as it is for every call.
func TestUpdateConfigV1RefusesAPage(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"text/html", "text/html; charset=utf-8", "TEXT/HTML;charset=ISO-8859-1", "application/xhtml+xml"} {
		s := newScript(t)
		s.on(v1Route, reply{status: 200, body: "<p>parked</p>", header: map[string]string{"Content-Type": ct}})
		c := newClient(t, s)
		err := c.UpdateConfig(context.Background(), v1Target(), oneVar())
		if !errors.Is(err, heroku.ErrUnexpectedAnswer) || heroku.Classify(err) != heroku.ClassPermanent {
			t.Errorf("a 200 %s page: %v; want a permanent ErrUnexpectedAnswer", ct, err)
		}
	}
}

// A V1 push costs two calls of the budget: the PUT, and the read-back that
// confirms it (its answer has no documented body).
func TestUpdateConfigV1(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	s.on(v1Route, reply{status: 200, body: `{}`})
	s.on(v1GetRoute, reply{status: 200, body: v1OKApp})
	lim := &countingLimiter{}
	c := newClient(t, s, heroku.WithLimiter(lim))

	if err := c.UpdateConfig(context.Background(), v1Target(), oneVar()); err != nil {
		t.Fatal(err)
	}
	reqs := s.requests(v1Route)
	if len(reqs) != 1 {
		t.Fatalf("got %d PUT requests on %s, want 1", s.total(), v1Route)
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.Header = reqs[0].header
	if user, pass, ok := req.BasicAuth(); !ok || user != "myaddon" || pass != v1Password {
		t.Errorf("basic auth = %q, ok %v", user, ok)
	}
	if want := `{"config":{"MYADDON_URL":"` + configValue + `"}}`; reqs[0].body != want {
		t.Errorf("body = %s, want %s", reqs[0].body, want)
	}
	if got := len(s.requests(v1GetRoute)); got != 1 {
		t.Errorf("got %d read-backs, want 1", got)
	}
	if lim.waits != 2 {
		t.Errorf("limiter waits = %d, want 2 (the PUT and its read-back)", lim.waits)
	}
}

// A 2xx to a V1 PUT counts as a landed push only when the config read back
// holds every value sent: a 200 "{}", a 202 or a 204 that changed nothing,
// or a read-back that fails, is ErrUnexpectedAnswer (permanent, not a
// refusal: the push stays unsettled and the caller reads back again), and
// never the read-back's own error, which could settle the push.
func TestUpdateConfigV1UnconfirmedIsUnexpected(t *testing.T) {
	t.Parallel()
	oldApp := `{"id":"` + herokuID + `","config":{"MYADDON_URL":"postgres://old@db.myaddon.example/d_1"}}`
	tests := []struct {
		name     string
		put      reply
		readBack reply
	}{
		{"200 that changed nothing", reply{status: 200, body: `{}`}, reply{status: 200, body: oldApp}},
		{"202 that changed nothing", reply{status: 202, body: `{}`}, reply{status: 200, body: oldApp}},
		{"204 that changed nothing", reply{status: 204}, reply{status: 200, body: oldApp}},
		{"var missing", reply{status: 200, body: `{}`}, reply{status: 200, body: `{"config":{}}`}},
		{"read-back refused", reply{status: 200, body: `{}`}, reply{status: 404, body: `{"id":"not_found"}`}},
		{"read-back rate limited", reply{status: 200, body: `{}`}, reply{status: 429, body: `{"id":"rate_limit"}`}},
		{"read-back not an app", reply{status: 200, body: `{}`}, reply{status: 200, body: `[]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(v1Route, tt.put)
			s.on(v1GetRoute, tt.readBack)
			err := newClient(t, s).UpdateConfig(context.Background(), v1Target(), oneVar())
			if !errors.Is(err, heroku.ErrUnexpectedAnswer) || heroku.Classify(err) != heroku.ClassPermanent || heroku.Refused(err) {
				t.Errorf("err = %v (class %s, refused %v); want a permanent ErrUnexpectedAnswer that is no refusal",
					err, heroku.Classify(err), heroku.Refused(err))
			}
			if got := len(s.requests(v1GetRoute)); got != 1 {
				t.Errorf("got %d read-backs, want 1", got)
			}
		})
	}
}

func TestGetConfig(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	s.on("GET /addons/"+addonID+"/config", reply{status: 200, body: okConfig})
	s.on(v1GetRoute, reply{status: 200, body: `{"id":"app123@heroku.com","config":{"MYADDON_URL":"` + configValue + `"}}`})
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))

	for _, target := range []heroku.Target{v3Target(), v1Target()} {
		t.Run(target.APIVersion, func(t *testing.T) {
			got, err := c.GetConfig(context.Background(), target)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got["MYADDON_URL"].Reveal() != configValue {
				t.Errorf("config = %v", got)
			}
		})
	}
	checkHeader(t, s.requests("GET /addons/" + addonID + "/config")[0], "Accept", heroku.V3Accept)
}

// Calls that cannot succeed fail before any request, permanently.
func TestUpdateConfigRefusesBadCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    []heroku.Option
		target  heroku.Target
		vars    []heroku.ConfigVar
		wantErr error
	}{
		{"no token", []heroku.Option{heroku.WithTokenStore(&memTokens{tokens: map[string]heroku.Token{}})}, v3Target(), oneVar(), heroku.ErrNoToken},
		{"no token store", nil, v3Target(), oneVar(), heroku.ErrNotConfigured},
		{"no vars", nil, v3Target(), nil, heroku.ErrInvalidRequest},
		{"empty value", nil, v3Target(), []heroku.ConfigVar{{Name: "MYADDON_URL"}}, heroku.ErrInvalidRequest},
		{"repeated name", nil, v3Target(), append(oneVar(), oneVar()...), heroku.ErrInvalidRequest},
		{"unknown version", nil, heroku.Target{AddonID: addonID, APIVersion: "v2"}, oneVar(), heroku.ErrInvalidRequest},
		{"v1 without heroku id", nil, heroku.Target{AddonID: addonID, APIVersion: "v1"}, oneVar(), heroku.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			c := newClient(t, s, tt.opts...)
			err := c.UpdateConfig(context.Background(), tt.target, tt.vars)
			if !errors.Is(err, tt.wantErr) || !heroku.IsPermanent(err) {
				t.Errorf("err = %v, want %v and permanent", err, tt.wantErr)
			}
			if s.total() != 0 {
				t.Errorf("sent %d requests, want none", s.total())
			}
		})
	}
}

func TestLimiterErrorIsReturnedWrapped(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	denied := errors.New("budget exhausted for this hour")
	c := newClient(t, s, heroku.WithLimiter(&countingLimiter{err: denied}), heroku.WithTokenStore(newMemTokens(addonID, validToken())))

	err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
	if !errors.Is(err, denied) {
		t.Errorf("err = %v, want it to wrap the limiter's error", err)
	}
	if s.total() != 0 {
		t.Errorf("sent %d requests, want none", s.total())
	}
}

// An answer whose config names a var twice holds two values for it, and
// which one the apps run on cannot be told: a read of the config, a V3
// push's answer and a V1 push's read-back that do so are unexpected
// answers, which prove nothing, whichever value comes last.
func TestAConfigNamingAVarTwiceIsNoAnswer(t *testing.T) {
	t.Parallel()
	sent := oneVar()[0]
	twice := func(first, last string) string {
		return `[{"name":"` + sent.Name + `","value":"` + first + `"},{"name":"` + sent.Name + `","value":"` + last + `"}]`
	}
	v1Twice := `{"config":{"` + sent.Name + `":"postgres://stale","` + sent.Name + `":"` + sent.Value.Reveal() + `"}}`
	s := newScript(t)
	s.on("GET /addons/"+addonID+"/config", reply{status: 200, body: twice(sent.Value.Reveal(), "postgres://stale")})
	s.on(patchRoute, reply{status: 200, body: twice("postgres://stale", sent.Value.Reveal())})
	s.on(v1Route, reply{status: 200, body: `{}`})
	s.on(v1GetRoute, reply{status: 200, body: v1Twice})
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())),
		heroku.WithV1Credentials("myaddon", secret.New(v1Password)))
	ctx := context.Background()
	_, err := c.GetConfig(ctx, v3Target())
	errs := []error{err, c.UpdateConfig(ctx, v3Target(), oneVar()), c.UpdateConfig(ctx, v1Target(), oneVar())}
	for i, err := range errs {
		if !errors.Is(err, heroku.ErrUnexpectedAnswer) {
			t.Errorf("call %d: %v, want an unexpected answer", i, err)
		}
	}
}

// A push's answer that names the pushed var twice, once without a value
// (null, a var Heroku lists as unset) and once with the pushed value, holds
// two answers for one var as surely as two values do: which one the apps
// run on cannot be told, so it is an unexpected answer, whichever comes
// first, never a confirmation that the push landed.
func TestAPushAnswerNamingTheVarTwiceOnceUnsetIsNoConfirmation(t *testing.T) {
	t.Parallel()
	sent := oneVar()[0]
	for _, body := range []string{
		`[{"name":"` + sent.Name + `","value":null},{"name":"` + sent.Name + `","value":"` + sent.Value.Reveal() + `"}]`,
		`[{"name":"` + sent.Name + `","value":"` + sent.Value.Reveal() + `"},{"name":"` + sent.Name + `","value":null}]`,
	} {
		s := newScript(t)
		s.on(patchRoute, reply{status: 200, body: body})
		c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
		if err := c.UpdateConfig(context.Background(), v3Target(), oneVar()); !errors.Is(err, heroku.ErrUnexpectedAnswer) {
			t.Errorf("answer %s: %v, want an unexpected answer", body, err)
		}
	}
}

// A var of a V3 config that gives its value twice, also in another case as
// encoding/json matches it, holds two values: a read of the config or a
// push's answer doing so proves nothing.
func TestAV3VarGivingItsValueTwiceIsNoAnswer(t *testing.T) {
	t.Parallel()
	sent := oneVar()[0]
	for _, second := range []string{"value", "Value"} {
		twice := `[{"name":"` + sent.Name + `","value":"` + sent.Value.Reveal() + `","` + second + `":"postgres://stale"}]`
		s := newScript(t)
		s.on("GET /addons/"+addonID+"/config", reply{status: 200, body: twice})
		s.on(patchRoute, reply{status: 200, body: `[{"name":"` + sent.Name + `","` + second + `":"postgres://stale","value":"` + sent.Value.Reveal() + `"}]`})
		c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
		ctx := context.Background()
		_, err := c.GetConfig(ctx, v3Target())
		for i, err := range []error{err, c.UpdateConfig(ctx, v3Target(), oneVar())} {
			if !errors.Is(err, heroku.ErrUnexpectedAnswer) {
				t.Errorf("%q given twice, call %d: %v, want an unexpected answer", second, i, err)
			}
		}
	}
}

// A V1 app's info that carries its config twice (the key "config" named
// twice, in any case, which encoding/json folds into one map, the last
// value of a var winning) names the var twice as surely as one config
// object that lists it twice: which value the apps run on cannot be told,
// so a read of it is an unexpected answer, not a config that lacks the
// pushed value (which would discard and revoke a credential Heroku holds).
func TestAV1AppInfoCarryingItsConfigTwiceIsNoAnswer(t *testing.T) {
	t.Parallel()
	sent := oneVar()[0]
	pushed := `{"` + sent.Name + `":"` + sent.Value.Reveal() + `"}`
	stale := `{"` + sent.Name + `":"postgres://stale"}`
	for _, body := range []string{
		`{"id":"app123@heroku.com","config":` + pushed + `,"config":` + stale + `}`,
		`{"id":"app123@heroku.com","config":` + pushed + `,"Config":` + stale + `}`,
	} {
		s := newScript(t)
		s.on(v1GetRoute, reply{status: 200, body: body})
		c := newClient(t, s, heroku.WithV1Credentials("myaddon", secret.New(v1Password)))
		got, err := c.GetConfig(context.Background(), v1Target())
		if !errors.Is(err, heroku.ErrUnexpectedAnswer) {
			t.Errorf("app info %s: read %s = %q, %v; want an unexpected answer",
				body, sent.Name, got[sent.Name].Reveal(), err)
		}
	}
}

// Heroku answers a config read of an add-on without vars with an empty
// config: `[]` on V3, an app's info whose config is `{}` on V1. A V3
// `null`, or a V1 info without its config or with a null one, is no
// config: ErrUnexpectedAnswer, never "Heroku holds nothing". Nor is a V3
// config holding an entry that names no var (`[null]`, `[{}]`, a name null
// or empty), which would read as not holding the vars rekey pushed.
func TestAConfigAnsweredNullIsNoAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		target heroku.Target
		route  string
		body   string
		want   error
	}{
		{"v3 null", v3Target(), "GET /addons/" + addonID + "/config", `null`, heroku.ErrUnexpectedAnswer},
		{"v3 empty", v3Target(), "GET /addons/" + addonID + "/config", `[]`, nil},
		{"v3 null entry", v3Target(), "GET /addons/" + addonID + "/config", `[null]`, heroku.ErrUnexpectedAnswer},
		{"v3 empty entry", v3Target(), "GET /addons/" + addonID + "/config", `[{}]`, heroku.ErrUnexpectedAnswer},
		{"v3 entry named null", v3Target(), "GET /addons/" + addonID + "/config", `[{"name":null,"value":"x"}]`, heroku.ErrUnexpectedAnswer},
		{"v3 entry named empty", v3Target(), "GET /addons/" + addonID + "/config", `[{"name":"","value":"x"}]`, heroku.ErrUnexpectedAnswer},
		{"v1 no config", v1Target(), v1GetRoute, `{"id":"` + herokuID + `"}`, heroku.ErrUnexpectedAnswer},
		{"v1 empty object", v1Target(), v1GetRoute, `{}`, heroku.ErrUnexpectedAnswer},
		{"v1 null config", v1Target(), v1GetRoute, `{"id":"` + herokuID + `","config":null}`, heroku.ErrUnexpectedAnswer},
		{"v1 empty config", v1Target(), v1GetRoute, `{"id":"` + herokuID + `","config":{}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(tc.route, reply{status: 200, body: tc.body})
			c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
			got, err := c.GetConfig(context.Background(), tc.target)
			if tc.want == nil && (err != nil || got == nil || len(got) != 0) || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("GetConfig answered %s = %v, %v; want an empty config or %v", tc.body, got, err, tc.want)
			}
		})
	}
}
