package web_test

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // Heroku's SSO tokens are SHA-1.
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

// Planted secrets of the fuzz fixtures: stored sealed in Redis, or held by
// the handler; no answer may ever carry one.
const (
	plantedRefresh = "planted-refresh-token-6d2c91"
	plantedAccess  = "planted-access-token-0b7e44"
)

// fuzzFixture is a fixture with an instance holding planted tokens and a
// rotation whose pending config holds a planted credential.
func fuzzFixture(f *testing.F) (*fixture, http.Handler) {
	fx := newFixture(f)
	ctx := context.Background()
	fx.register("inst-1", "cred-0")
	tok := heroku.Token{RefreshToken: secret.New(plantedRefresh), AccessToken: secret.New(plantedAccess), ExpiresAt: start.Add(time.Hour)}
	if err := fx.st.SaveToken(ctx, "inst-1", tok); err != nil {
		f.Fatal(err)
	}
	fx.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	return fx, fx.srv.Config.Handler
}

// secretsOf lists every secret the fixture knows.
func secretsOf() []string {
	return []string{apiToken, dashPassword, ssoSalt, clientSecret, plantedRefresh, plantedAccess, pendingSecret, "pending-cred-secret-55a1"}
}

// sentTokens are the token values a request body carries, which an answer
// must not repeat either.
func sentTokens(body []byte) []string {
	var in struct {
		OAuthGrant struct {
			Code any `json:"code"`
		} `json:"oauth_grant"`
		OAuth struct {
			RefreshToken any `json:"refresh_token"`
			AccessToken  any `json:"access_token"`
		} `json:"oauth"`
	}
	_ = json.Unmarshal(body, &in)
	var out []string
	for _, v := range []any{in.OAuthGrant.Code, in.OAuth.RefreshToken, in.OAuth.AccessToken} {
		if s, ok := v.(string); ok && len(s) >= 8 {
			out = append(out, s)
		}
	}
	return out
}

// checkAnswer fails on a 5xx, or on an answer that carries a secret the
// request did not itself contain elsewhere than in a token field.
func checkAnswer(t *testing.T, input string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("got status %d for %q: %s", rec.Code, input, rec.Body.String())
	}
	answer := rec.Body.String()
	for k, v := range rec.Header() {
		answer += k + ": " + strings.Join(v, ",") + "\n"
	}
	for _, s := range secretsOf() {
		if strings.Contains(answer, s) && !strings.Contains(input, s) {
			t.Fatalf("answer to %q carries a planted secret: %s", input, answer)
		}
	}
	for _, s := range sentTokens(body) {
		if strings.Contains(answer, s) && strings.Count(input, s) == 1 {
			t.Fatalf("answer to %q repeats a token it was sent: %s", input, answer)
		}
	}
}

// apiRequest runs one API request on h.
func apiRequest(h http.Handler, method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://rekey.test"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// FuzzPutInstance sends PUT /api/v1/instances/{id} bodies to the real
// handler over a real Redis: never a 5xx, never a panic, never a secret in
// the answer.
func FuzzPutInstance(f *testing.F) {
	for _, seed := range []struct{ id, body string }{
		{"inst-1", `{"api_version":"v3","config_vars":["MYADDON_URL"],"grace":"3h"}`},
		{"inst-2", `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth":{"refresh_token":"r-token-123456","access_token":"a-token-123456","expires_at":"2030-01-01T00:00:00Z"}}`},
		{"inst-3", `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"grant-code-0001"}}`},
		{"inst-4", `{"api_version":"v1","heroku_id":"app4@heroku.com","config_vars":["MYADDON_URL"],"grace":"1ms"}`},
		{"inst-5", `{"api_version":"v3","config_vars":"MYADDON_URL","oauth":{"refresh_token":5}}`},
		{"..", `{"api_version":"v3"}`},
		{"inst-6", `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"c"},"oauth":{"refresh_token":"r"}}`},
	} {
		f.Add(seed.id, []byte(seed.body))
	}
	_, h := fuzzFixture(f)
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		path := "/api/v1/instances/" + url.PathEscape(id)
		rec := apiRequest(h, http.MethodPut, path, body)
		checkAnswer(t, id+" "+string(body), body, rec)
	})
}

// FuzzPostRotations sends POST /api/v1/rotations bodies to the real
// handler over a real Redis: never a 5xx, never a panic, never a secret in
// the answer.
func FuzzPostRotations(f *testing.F) {
	for _, body := range []string{
		`{"instance_ids":["inst-1"],"reason":"INC-4711 leaked key","grace":"30m"}`,
		`{"instance_ids":["inst-1","inst-404"]}`,
		`{"all":true,"grace":"1ms"}`,
		`{"instance_ids":["inst-1"],"skip_if_previous":true}`,
		`{"instance_ids":"inst-1"}`,
		`{"all":false}`,
		`{"instance_ids":["../x"],"grace":"-1h"}`,
	} {
		f.Add([]byte(body))
	}
	_, h := fuzzFixture(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := apiRequest(h, http.MethodPost, "/api/v1/rotations", body)
		checkAnswer(t, string(body), body, rec)
	})
}

// FuzzSSOLogin posts random sign-in forms to the real handler: never a
// 5xx, never a panic, and never a session without a valid token.
func FuzzSSOLogin(f *testing.F) {
	fx, h := fuzzFixture(f)
	ts := strconv.FormatInt(fx.clock.Now().Unix(), 10)
	valid := sha1Hex("inst-1:" + ssoSalt + ":" + ts)
	f.Add("inst-1", ts, valid, "", "user-1", "dev@example.com", "my-app", "bmF2", false)
	f.Add("inst-1", ts, "", sha256Hex("inst-1:"+ssoSalt+":"+ts+":user-1:dev@example.com"), "user-1", "dev@example.com", "my-app", "", false)
	f.Add("inst-1", ts, valid, "", "", "", "", "", true)
	f.Add("inst-1", "1267597000", valid, "", "", "", "", "", false)
	f.Add("inst-9", ts, sha1Hex("inst-9:"+ssoSalt+":"+ts), "", "", "", "", "", false)
	f.Add("", "", "", "", "", "", "", "", false)
	f.Add("inst-1", "-9223372036854775808", "zz", "", "", "", "", "\x00", false)
	now := fx.clock.Now()
	f.Fuzz(func(t *testing.T, id, timestamp, token, userToken, userID, email, app, nav string, v1 bool) {
		form := url.Values{"timestamp": {timestamp}, "user_id": {userID}, "email": {email}, "app": {app}, "nav-data": {nav}}
		if v1 {
			form.Set("id", id)
			form.Set("token", token)
		} else {
			form.Set("resource_id", id)
			form.Set("resource_token", token)
			if userToken != "" {
				form.Set("user_scoped_resource_token", userToken)
			}
		}
		req := httptest.NewRequest(http.MethodPost, "http://rekey.test/sso/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("got status %d: %s", rec.Code, rec.Body.String())
		}
		if cookieNamed(rec.Header(), "rekey_session") == nil {
			return
		}
		if !ssoValid(now, form, v1) {
			t.Fatalf("signed in without a valid token: %v", form)
		}
	})
}

// ssoValid checks a sign-in the way Heroku's documentation defines it,
// independently of the handler.
func ssoValid(now time.Time, form url.Values, v1 bool) bool {
	id, tok := form.Get("resource_id"), form.Get("resource_token")
	if v1 {
		id, tok = form.Get("id"), form.Get("token")
	}
	ts, err := strconv.ParseInt(form.Get("timestamp"), 10, 64)
	if err != nil || id == "" || now.Sub(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return false
	}
	if ut := form.Get("user_scoped_resource_token"); ut != "" && !v1 {
		sum := sha256.Sum256([]byte(id + ":" + ssoSalt + ":" + form.Get("timestamp") + ":" + form.Get("user_id") + ":" + form.Get("email")))
		return subtle.ConstantTimeCompare([]byte(strings.ToLower(ut)), []byte(hex.EncodeToString(sum[:]))) == 1
	}
	sum := sha1.Sum([]byte(id + ":" + ssoSalt + ":" + form.Get("timestamp"))) //nolint:gosec // protocol-defined
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(tok)), []byte(hex.EncodeToString(sum[:]))) == 1
}
