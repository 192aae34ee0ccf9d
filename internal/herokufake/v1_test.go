package herokufake_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

const herokuID = "app123@heroku.com"

func v1Spec() herokufake.AddonSpec {
	s := spec(addonA)
	s.HerokuID = herokuID
	return s
}

func (e *env) v1(method, path, user, pass, body string) reply {
	e.t.Helper()
	req := e.request(method, path, body)
	req.SetBasicAuth(user, pass)
	return e.do(req)
}

func TestV1(t *testing.T) {
	t.Parallel()
	const (
		id      = herokufake.DefaultManifestID
		pass    = herokufake.DefaultManifestPassword
		encoded = "/vendor/apps/app123%40heroku.com"
		body    = `{"config":{"MYADDON_URL":"postgres://new"}}`
	)
	tests := []struct {
		name        string
		setup       func(*env)
		method      string
		path        string
		user, pass  string
		body        string
		status      int
		id          string
		wantChanged bool
	}{
		{"put url-encoded id", nil, http.MethodPut, encoded, id, pass, body, 200, "", true},
		{"put raw id", nil, http.MethodPut, "/vendor/apps/" + herokuID, id, pass, body, 200, "", true},
		{"wrong password", nil, http.MethodPut, encoded, id, "wrong", body, 401, "unauthorized", false},
		{"wrong manifest id", nil, http.MethodPut, encoded, "other", pass, body, 401, "unauthorized", false},
		{"unknown app", nil, http.MethodPut, "/vendor/apps/app999%40heroku.com", id, pass, body, 404, "not_found", false},
		{"deprovisioned", func(e *env) { e.fake.Deprovision(addonA) }, http.MethodPut, encoded, id, pass, body, 404, "not_found", false},
		{"undeclared name", nil, http.MethodPut, encoded, id, pass, `{"config":{"OTHER":"x"}}`, 422, "invalid_params", false},
		{"malformed body", nil, http.MethodPut, encoded, id, pass, `{"config":[]}`, 400, "bad_request", false},
		{"get", nil, http.MethodGet, encoded, id, pass, "", 200, "", false},
		{"get wrong password", nil, http.MethodGet, encoded, id, "wrong", "", 401, "unauthorized", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.add(v1Spec())
			if tt.setup != nil {
				tt.setup(e)
			}
			r := e.v1(tt.method, tt.path, tt.user, tt.pass, tt.body)
			check(t, "status", r.status, tt.status)
			check(t, "error id", r.err.ID, tt.id)
			check(t, "changes", e.fake.ConfigChanges(addonA), map[bool]int{true: 1}[tt.wantChanged])
			if r.status >= 400 && strings.Contains(r.body, "postgres://") {
				t.Errorf("error body echoes a value: %s", r.body)
			}
		})
	}
}

func TestV1GetReturnsConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(v1Spec())
	auth := []string{herokufake.DefaultManifestID, herokufake.DefaultManifestPassword}
	e.v1(http.MethodPut, "/vendor/apps/app123%40heroku.com", auth[0], auth[1], `{"config":{"MYADDON_KEY":"k"}}`)
	var app struct {
		ID          string
		Name        string
		Config      map[string]string
		CallbackURL string `json:"callback_url"`
	}
	decode(t, e.v1(http.MethodGet, "/vendor/apps/app123%40heroku.com", auth[0], auth[1], "").body, &app)
	check(t, "id", app.ID, herokuID)
	check(t, "name", app.Name, "app-0123")
	check(t, "url", app.Config[urlVar], "postgres://old")
	check(t, "key", app.Config["MYADDON_KEY"], "k")
	check(t, "callback_url", app.CallbackURL, "https://api.heroku.com/vendor/apps/app123%40heroku.com")
}

func TestV1Credentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, herokufake.WithV1Credentials("mine", "s3cret"))
	e.add(v1Spec())
	r := e.v1(http.MethodGet, "/vendor/apps/app123%40heroku.com", "mine", "s3cret", "")
	check(t, "status", r.status, 200)
	r = e.v1(http.MethodGet, "/vendor/apps/app123%40heroku.com", herokufake.DefaultManifestID, herokufake.DefaultManifestPassword, "")
	check(t, "default credentials status", r.status, 401)
}
