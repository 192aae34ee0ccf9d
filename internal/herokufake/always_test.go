package herokufake_test

import (
	"testing"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func TestAlwaysAnswersEveryCallUntilCleared(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	e.fake.Always(herokufake.PatchConfig, herokufake.Respond(403))
	e.fake.Script(herokufake.PatchConfig, herokufake.Respond(500))
	want := []struct {
		status int
		id     string
	}{{500, "internal_server_error"}, {403, "forbidden"}, {403, "forbidden"}, {403, "forbidden"}}
	for _, w := range want {
		r := e.patch(addonA, token, urlVar, "postgres://new")
		check(t, "status", r.status, w.status)
		check(t, "error id", r.err.ID, w.id)
	}
	check(t, "writes while failing", e.fake.ConfigWrites(addonA), 0)
	e.fake.Clear(herokufake.PatchConfig)
	check(t, "status after Clear", e.patch(addonA, token, urlVar, "postgres://new").status, 200)
	check(t, "writes", e.fake.ConfigWrites(addonA), 1)
}
