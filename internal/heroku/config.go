package heroku

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rekeyhq/rekey/internal/jsonkey"
	"github.com/rekeyhq/rekey/internal/secret"
)

// V3Accept is the Accept header every V3 Platform API call sends.
const V3Accept = "application/vnd.heroku+json; version=3"

// API versions of a Target.
const (
	APIVersionV3 = "v3"
	APIVersionV1 = "v1"
)

// configVar is one config var on the wire.
type configVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// UpdateConfig sets every var in vars in one Heroku call, so the customer's
// apps get one release: V3 PATCH /addons/{id}/config or V1 PUT
// /vendor/apps/{heroku_id}.
func (c *Client) UpdateConfig(ctx context.Context, t Target, vars []ConfigVar) error {
	if err := checkVars(vars); err != nil {
		return err
	}
	switch t.APIVersion {
	case APIVersionV3:
		return c.updateV3(ctx, t, vars)
	case APIVersionV1:
		return c.updateV1(ctx, t, vars)
	}
	return fmt.Errorf("heroku: api version %q: %w", t.APIVersion, ErrInvalidRequest)
}

// GetConfig returns the add-on's config vars as Heroku holds them.
func (c *Client) GetConfig(ctx context.Context, t Target) (map[string]secret.String, error) {
	switch t.APIVersion {
	case APIVersionV3:
		return c.getV3(ctx, t)
	case APIVersionV1:
		return c.getV1(ctx, t)
	}
	return nil, fmt.Errorf("heroku: api version %q: %w", t.APIVersion, ErrInvalidRequest)
}

// checkVars refuses an empty set, empty names or values, and repeated names:
// each would publish a broken credential.
func checkVars(vars []ConfigVar) error {
	if len(vars) == 0 {
		return fmt.Errorf("heroku: no config vars: %w", ErrInvalidRequest)
	}
	seen := make(map[string]bool, len(vars))
	for _, v := range vars {
		if v.Name == "" || v.Value.IsZero() || seen[v.Name] {
			return fmt.Errorf("heroku: config var %q empty or repeated: %w", v.Name, ErrInvalidRequest)
		}
		seen[v.Name] = true
	}
	return nil
}

func (c *Client) updateV3(ctx context.Context, t Target, vars []ConfigVar) error {
	body := struct {
		Config []configVar `json:"config"`
	}{Config: make([]configVar, len(vars))}
	for i, v := range vars {
		body.Config[i] = configVar{Name: v.Name, Value: v.Value.Reveal()}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("heroku %s: encode body: %w", EndpointPatchConfig, ErrInvalidRequest)
	}
	answer, err := c.v3(ctx, t, EndpointPatchConfig, http.MethodPatch, raw, values(vars))
	if err != nil {
		return err
	}
	return confirmV3(answer, vars)
}

// confirmV3 checks that answer, a 2xx to PATCH /addons/{id}/config, is
// what Heroku answers: the add-on's config as it now stands, holding every
// var of vars with its value. Anything else (a page, an empty body, the
// config without them) is ErrUnexpectedAnswer: the push may or may not
// have taken effect, and only reading the config back can tell.
func confirmV3(answer []byte, vars []ConfigVar) error {
	var got []struct {
		Name  string  `json:"name"`
		Value *string `json:"value"`
	}
	if err := json.Unmarshal(answer, &got); err != nil {
		return fmt.Errorf("heroku %s: a 2xx whose body is not a config: %w", EndpointPatchConfig, ErrUnexpectedAnswer)
	}
	if !eachVarOnce(answer) {
		return fmt.Errorf("heroku %s: a 2xx whose config names a var twice: %w", EndpointPatchConfig, ErrUnexpectedAnswer)
	}
	held := make(map[string]string, len(got))
	for _, v := range got {
		if v.Value != nil {
			held[v.Name] = *v.Value
		}
	}
	for _, v := range vars {
		if w, ok := held[v.Name]; !ok || w != v.Value.Reveal() {
			return fmt.Errorf("heroku %s: a 2xx whose config does not hold the vars sent: %w", EndpointPatchConfig, ErrUnexpectedAnswer)
		}
	}
	return nil
}

// eachVarOnce reports whether a V3 config, a JSON array of {"name",
// "value"} objects, names each var once (one listed unset, its value null,
// counts too), and each var gives its name and its value once:
// {"name":"A","value":"x","Value":"y"} holds two values for A, and
// encoding/json keeps the last silently. An entry that names no var (null,
// {}, a name null or empty) is no var of Heroku's: decoded, it would read
// as a var of no name, and the config as one that does not hold the vars
// rekey pushed. Text that is no array passes: decoding it fails.
func eachVarOnce(config []byte) bool {
	var vars []json.RawMessage
	if json.Unmarshal(config, &vars) != nil {
		return true
	}
	named := make(map[string]bool, len(vars))
	for _, v := range vars {
		var nv *struct {
			Name *string `json:"name"`
		}
		if !jsonkey.OnceEach(v, "name", "value") || json.Unmarshal(v, &nv) != nil || nv == nil || nv.Name == nil ||
			*nv.Name == "" || named[*nv.Name] {
			return false
		}
		named[*nv.Name] = true
	}
	return true
}

func (c *Client) getV3(ctx context.Context, t Target) (map[string]secret.String, error) {
	body, err := c.v3(ctx, t, EndpointGetConfig, http.MethodGet, nil, nil)
	if err != nil {
		return nil, err
	}
	// Heroku answers an add-on without config vars with an empty array: a
	// null is no config, and read as one it would say Heroku holds nothing.
	var vars []configVar
	if err := json.Unmarshal(body, &vars); err != nil || vars == nil {
		return nil, fmt.Errorf("heroku %s: a 2xx whose body is not a config: %w", EndpointGetConfig, ErrUnexpectedAnswer)
	}
	if !eachVarOnce(body) {
		return nil, fmt.Errorf("heroku %s: a 2xx whose config names a var twice, or none: %w", EndpointGetConfig, ErrUnexpectedAnswer)
	}
	out := make(map[string]secret.String, len(vars))
	for _, v := range vars {
		out[v.Name] = secret.New(v.Value)
	}
	return out, nil
}

// v3 runs one call on /addons/{id}/config with the add-on's bearer token.
func (c *Client) v3(ctx context.Context, t Target, endpoint, method string, body []byte, secrets []string) ([]byte, error) {
	if t.AddonID == "" {
		return nil, fmt.Errorf("heroku %s: empty add-on id: %w", endpoint, ErrInvalidRequest)
	}
	u := c.apiURL + "/addons/" + escapeSegment(t.AddonID) + "/config"
	return c.withToken(ctx, t.AddonID, endpoint, func(access secret.String) call {
		cl := call{endpoint: endpoint, method: method, url: u, body: body, addonID: t.AddonID}
		if body != nil {
			cl.contentType = "application/json"
		}
		cl.authorize = v3Authorize(access)
		cl.secrets = secrets // withToken adds the tokens (holding)
		return cl
	})
}

// v3Authorize sets the headers of a V3 call made with the add-on's access
// token.
func v3Authorize(access secret.String) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Accept", V3Accept)
		r.Header.Set("Authorization", "Bearer "+access.Reveal())
	}
}

func (c *Client) updateV1(ctx context.Context, t Target, vars []ConfigVar) error {
	cfg := make(map[string]string, len(vars))
	for _, v := range vars {
		cfg[v.Name] = v.Value.Reveal()
	}
	raw, err := json.Marshal(map[string]any{"config": cfg})
	if err != nil {
		return fmt.Errorf("heroku %s: encode body: %w", EndpointV1Put, ErrInvalidRequest)
	}
	if _, err := c.v1(ctx, t, EndpointV1Put, http.MethodPut, raw, values(vars)); err != nil {
		return err
	}
	return c.confirmV1(ctx, t, vars)
}

// confirmV1 reads the app's config back after a 2xx to a V1 PUT, whose
// answer has no documented body: a 200 "{}", a 202 or a 204 says nothing
// of what Heroku holds, and something that is not Heroku (a proxy) may
// have answered. The push counts as landed only when the config read back
// holds every var of vars with its value; otherwise, or when the read
// fails, it is ErrUnexpectedAnswer, as V3's unconfirmed answer is: the
// push may or may not have taken effect, and the caller reads the config
// back again before it keeps or discards the credential. The read-back
// does not pass on its own error (a 429 or a 4xx would settle a push that
// was answered 2xx and may have landed: Refused).
//
// It costs one more call of the shared budget per V1 push (two in all):
// V1 is retired and rare, and a credential promoted on an answer that
// changed nothing would have the one the apps run on revoked (I1).
func (c *Client) confirmV1(ctx context.Context, t Target, vars []ConfigVar) error {
	got, err := c.getV1(ctx, t)
	if err != nil {
		return &UnconfirmedError{Read: err,
			msg: fmt.Sprintf("heroku %s: a 2xx whose read-back failed (%s)", EndpointV1Put, Classify(err))}
	}
	for _, v := range vars {
		if w, ok := got[v.Name]; !ok || w.Reveal() != v.Value.Reveal() {
			return &UnconfirmedError{msg: fmt.Sprintf("heroku %s: a 2xx whose config, read back, does not hold the vars sent", EndpointV1Put)}
		}
	}
	return nil
}

// UnconfirmedError is a V1 push answered 2xx that the app's config, read
// back, did not confirm (confirmV1). It is ErrUnexpectedAnswer to every
// caller that asks (errors.Is), and to Classify and Refused alike: the
// push may or may not have landed. Read tells why, for the breaker: the
// read-back's own error (a 5xx, a 429, no answer: Heroku's trouble, not a
// sign that something else answers for it; a page: not Heroku's answer),
// or nil when Heroku answered an app's config without the vars sent (a
// read lagging behind the write, or a push not applied), which is an
// answer of Heroku's.
type UnconfirmedError struct {
	Read error // the read-back's error; nil when it answered a config
	msg  string
}

func (e *UnconfirmedError) Error() string { return e.msg + ": " + ErrUnexpectedAnswer.Error() }

// Unwrap returns ErrUnexpectedAnswer alone: the read-back's status must
// not read as the push's (a 404 or a 429 to the read would settle a push
// that was answered 2xx and may have landed, Refused).
func (e *UnconfirmedError) Unwrap() error { return ErrUnexpectedAnswer }

func (c *Client) getV1(ctx context.Context, t Target) (map[string]secret.String, error) {
	body, err := c.v1(ctx, t, EndpointV1Get, http.MethodGet, nil, nil)
	if err != nil {
		return nil, err
	}
	var app struct {
		Config json.RawMessage `json:"config"`
	}
	// An app's info always carries its config, an object even when it
	// holds no var: without one, or with a null one, it is no app's info,
	// and read as one it would say Heroku holds nothing.
	var config map[string]string
	if json.Unmarshal(body, &app) != nil || json.Unmarshal(app.Config, &config) != nil || config == nil {
		return nil, fmt.Errorf("heroku %s: a 2xx whose body is not an app's info: %w", EndpointV1Get, ErrUnexpectedAnswer)
	}
	// A config that names a var twice holds two values for it, and which
	// one the apps run on cannot be told: it proves neither that a push
	// landed nor that it did not. So does an app's info that carries its
	// config twice ("config" named twice, in any case: encoding/json folds
	// both into one map, the last value of a var winning).
	if !jsonkey.OnceEach(body, "config") || !jsonkey.Once(app.Config) {
		return nil, fmt.Errorf("heroku %s: a 2xx whose config names a var twice: %w", EndpointV1Get, ErrUnexpectedAnswer)
	}
	out := make(map[string]secret.String, len(config))
	for name, v := range config {
		out[name] = secret.New(v)
	}
	return out, nil
}

// v1 runs one call on /vendor/apps/{heroku_id} with the manifest credentials.
func (c *Client) v1(ctx context.Context, t Target, endpoint, method string, body []byte, secrets []string) ([]byte, error) {
	if c.v1User == "" {
		return nil, fmt.Errorf("heroku %s: no v1 manifest credentials: %w", endpoint, ErrNotConfigured)
	}
	if t.AddonID == "" || t.HerokuID == "" {
		return nil, fmt.Errorf("heroku %s: empty add-on id or heroku id: %w", endpoint, ErrInvalidRequest)
	}
	cl := call{
		endpoint: endpoint,
		method:   method,
		url:      c.apiURL + "/vendor/apps/" + escapeSegment(t.HerokuID),
		body:     body,
		addonID:  t.AddonID,
		// The password travels as the base64 of "user:password" too.
		secrets: append(slices.Clip(secrets), c.v1Password.Reveal(),
			base64.StdEncoding.EncodeToString([]byte(c.v1User+":"+c.v1Password.Reveal()))),
	}
	if body != nil {
		cl.contentType = "application/json"
	}
	cl.authorize = func(r *http.Request) {
		r.Header.Set("Accept", "application/json")
		r.SetBasicAuth(c.v1User, c.v1Password.Reveal())
	}
	return c.do(ctx, cl)
}

// values returns the revealed values of vars, for scrubbing.
func values(vars []ConfigVar) []string {
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = v.Value.Reveal()
	}
	return out
}

// escapeSegment percent-encodes everything but RFC 3986's unreserved
// characters. url.PathEscape leaves "@" alone, but Heroku documents V1 ids in
// paths as "app123%40heroku.com".
func escapeSegment(s string) string {
	if s == "." || s == ".." {
		return strings.ReplaceAll(s, ".", "%2E") // never a relative path step
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~':
			b.WriteByte(ch)
		default:
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}
