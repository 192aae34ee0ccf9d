package herokufake_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func TestV3Errors(t *testing.T) {
	t.Parallel()
	patchA := func(e *env, token string) reply { return e.patch(addonA, token, urlVar, "postgres://new") }
	tests := []struct {
		name   string
		call   func(e *env, token string) reply
		status int
		id     string
	}{
		{"no accept header", func(e *env, token string) reply {
			req := e.request(http.MethodGet, "/addons/"+addonA+"/config", "")
			req.Header.Set("Authorization", "Bearer "+token)
			return e.do(req)
		}, 406, "not_acceptable"},
		{"no token", func(e *env, _ string) reply { return patchA(e, "") }, 401, "unauthorized"},
		{"unknown token", func(e *env, _ string) reply { return patchA(e, "HRKU-nope") }, 401, "unauthorized"},
		{"token expired by time", func(e *env, token string) reply {
			e.clock.Advance(8 * time.Hour)
			return patchA(e, token)
		}, 401, "unauthorized"},
		{"tokens expired by the test", func(e *env, token string) reply {
			e.fake.ExpireAccessTokens()
			return patchA(e, token)
		}, 401, "unauthorized"},
		{"token of another add-on", func(e *env, token string) reply {
			return e.patch(addonB, token, urlVar, "postgres://new")
		}, 403, "forbidden"},
		{"unknown add-on", func(e *env, token string) reply {
			return e.patch("00000000-0000-4000-8000-000000000000", token, urlVar, "x")
		}, 404, "not_found"},
		{"deprovisioned add-on", func(e *env, token string) reply {
			e.fake.Deprovision(addonA)
			return patchA(e, token)
		}, 404, "not_found"},
		{"get config of deprovisioned add-on", func(e *env, token string) reply {
			e.fake.Deprovision(addonA)
			return e.v3(http.MethodGet, "/addons/"+addonA+"/config", token, "")
		}, 404, "not_found"},
		{"undeclared name", func(e *env, token string) reply {
			return e.patch(addonA, token, "OTHER_URL", "postgres://new")
		}, 422, "invalid_params"},
		{"null value", func(e *env, token string) reply {
			return e.v3(http.MethodPatch, "/addons/"+addonA+"/config", token, `{"config":[{"name":"MYADDON_URL","value":null}]}`)
		}, 422, "invalid_params"},
		{"malformed body", func(e *env, token string) reply {
			return e.v3(http.MethodPatch, "/addons/"+addonA+"/config", token, `{"config":`)
		}, 400, "bad_request"},
		{"body without config", func(e *env, token string) reply {
			return e.v3(http.MethodPatch, "/addons/"+addonA+"/config", token, `{}`)
		}, 400, "bad_request"},
		{"unknown route", func(e *env, token string) reply {
			return e.v3(http.MethodGet, "/apps", token, "")
		}, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.add(spec(addonA))
			e.add(spec(addonB))
			token := e.exchange(addonA).AccessToken
			r := tt.call(e, token)
			check(t, "status", r.status, tt.status)
			check(t, "error id", r.err.ID, tt.id)
			if r.err.Message == "" || r.err.URL == "" {
				t.Errorf("error body %s lacks message or url", r.body)
			}
			if strings.Contains(r.body, token) || strings.Contains(r.body, "postgres://") {
				t.Errorf("error body %s echoes a secret", r.body)
			}
			check(t, "config unchanged", e.fake.ConfigWrites(addonA), 0)
		})
	}
}

func TestPatchConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := spec(addonA)
	s.Name = "myaddon-shiny-12345"
	e.add(s)
	token := e.exchange(addonA).AccessToken

	body := `{"config":[{"name":"MYADDON_URL","value":"postgres://new"},{"name":"MYADDON_KEY","value":"k2"}]}`
	r := e.v3(http.MethodPatch, "/addons/"+addonA+"/config", token, body)
	check(t, "status", r.status, 200)
	var got []struct{ Name, Value string }
	decode(t, r.body, &got)
	check(t, "entries", len(got), 2)
	check(t, "first entry", got[0], struct{ Name, Value string }{"MYADDON_KEY", "k2"})
	check(t, "second entry", got[1], struct{ Name, Value string }{urlVar, "postgres://new"})
	check(t, "Config", e.fake.Config(addonA)[urlVar], "postgres://new")

	r = e.patch("myaddon-shiny-12345", token, urlVar, "postgres://by-name")
	check(t, "status by global name", r.status, 200)
	r = e.v3(http.MethodGet, "/addons/"+addonA+"/config", token, "")
	check(t, "get status", r.status, 200)
	if !strings.Contains(r.body, "postgres://by-name") {
		t.Errorf("GET config = %s, want the patched value", r.body)
	}
	check(t, "writes", e.fake.ConfigWrites(addonA), 2)
	check(t, "changes", e.fake.ConfigChanges(addonA), 2)
}

func TestGetAddon(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	var info struct {
		ID         string
		State      string
		App        struct{ ID, Name string }
		ConfigVars []string `json:"config_vars"`
	}
	r := e.v3(http.MethodGet, "/addons/"+addonA, token, "")
	check(t, "status", r.status, 200)
	decode(t, r.body, &info)
	check(t, "id", info.ID, addonA)
	check(t, "state", info.State, "provisioned")
	check(t, "app name", info.App.Name, "app-0123")
	check(t, "app id set", info.App.ID != "", true)
	check(t, "config vars", strings.Join(info.ConfigVars, ","), "MYADDON_URL,MYADDON_KEY")

	e.fake.Deprovision(addonA)
	decode(t, e.v3(http.MethodGet, "/addons/"+addonA, token, "").body, &info)
	check(t, "state after deprovision", info.State, "deprovisioned")
}

func TestEveryResponseCarriesHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	replies := map[string]reply{
		"200":   e.patch(addonA, token, urlVar, "v"),
		"401":   e.patch(addonA, "", urlVar, "v"),
		"404":   e.v3(http.MethodGet, "/nowhere", token, ""),
		"406":   e.do(e.request(http.MethodGet, "/addons/"+addonA, "")),
		"oauth": e.oauth(nil),
		"limit": e.v3(http.MethodGet, "/account/rate-limits", "", ""),
	}
	ids := map[string]bool{}
	for name, r := range replies {
		id := r.header.Get("Request-Id")
		if len(id) != 36 || ids[id] {
			t.Errorf("%s: Request-Id %q is not a fresh uuid", name, id)
		}
		ids[id] = true
		if r.header.Get("RateLimit-Remaining") == "" {
			t.Errorf("%s: no RateLimit-Remaining", name)
		}
	}
}

func TestAddAddonRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	f := herokufake.New()
	if err := f.AddAddon(spec(addonA)); err != nil {
		t.Fatal(err)
	}
	bad := map[string]herokufake.AddonSpec{
		"duplicate":  spec(addonA),
		"no id":      {App: "a", ConfigVars: []string{urlVar}},
		"no app":     {ID: addonB, ConfigVars: []string{urlVar}},
		"no vars":    {ID: addonB, App: "a"},
		"undeclared": {ID: addonB, App: "a", ConfigVars: []string{urlVar}, InitialConfig: map[string]string{"X": "1"}},
	}
	for name, s := range bad {
		if err := f.AddAddon(s); err == nil {
			t.Errorf("%s: AddAddon succeeded, want an error", name)
		}
	}
}
