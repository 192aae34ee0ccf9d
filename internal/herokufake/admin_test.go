package herokufake_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(e.request(http.MethodPost, "/_fake/addons",
		`{"id":"`+addonA+`","app":"shop","config_vars":["MYADDON_URL"],"initial_config":{"MYADDON_URL":"postgres://old"}}`))
	check(t, "add status", r.status, http.StatusCreated)
	check(t, "duplicate add status", e.do(e.request(http.MethodPost, "/_fake/addons", `{"id":"`+addonA+`","app":"shop","config_vars":["X"]}`)).status, 422)

	var grant struct{ Code, Type string }
	decode(t, e.do(e.request(http.MethodPost, "/_fake/addons/"+addonA+"/code", "")).body, &grant)
	check(t, "grant type", grant.Type, "authorization_code")
	r = e.oauth(url.Values{"grant_type": {"authorization_code"}, "code": {grant.Code}, "client_secret": {herokufake.DefaultClientSecret}})
	check(t, "exchange status", r.status, 200)
	var tok tokens
	decode(t, r.body, &tok)
	e.patch(addonA, tok.AccessToken, urlVar, "postgres://new")

	var config map[string]string
	decode(t, e.do(e.request(http.MethodGet, "/_fake/addons/"+addonA+"/config", "")).body, &config)
	check(t, "config", config[urlVar], "postgres://new")

	var holders struct{ Configs, Dynos int }
	decode(t, e.do(e.request(http.MethodGet, "/_fake/holders?name=MYADDON_URL&value=postgres%3A%2F%2Fold", "")).body, &holders)
	check(t, "old value holders", holders, struct{ Configs, Dynos int }{0, 2})

	var stats struct {
		Total int
		Calls map[string]int
	}
	decode(t, e.do(e.request(http.MethodGet, "/_fake/stats", "")).body, &stats)
	check(t, "stats total", stats.Total, 2)
	check(t, "stats patch", stats.Calls["patch_config 200"], 1)

	check(t, "deprovision status", e.do(e.request(http.MethodPost, "/_fake/addons/"+addonA+"/deprovision", "")).status, 204)
	check(t, "config after deprovision", e.do(e.request(http.MethodGet, "/_fake/addons/"+addonA+"/config", "")).status, 404)
}
