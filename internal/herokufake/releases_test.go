package herokufake_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func TestChangeReleasesEveryAttachedApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := spec(addonA)
	s.AttachedApps = []string{"staging", "worker"}
	e.add(s)
	token := e.exchange(addonA).AccessToken
	body := `{"config":[{"name":"MYADDON_URL","value":"postgres://new"},{"name":"MYADDON_KEY","value":"k"}]}`
	e.clock.Advance(time.Minute)
	check(t, "status", e.v3("PATCH", "/addons/"+addonA+"/config", token, body).status, 200)

	for _, app := range []string{"app-0123", "staging", "worker"} {
		rs := e.fake.Releases(app)
		if len(rs) != 2 {
			t.Fatalf("%s has %d releases, want 2 (provision, change)", app, len(rs))
		}
		last := rs[1]
		check(t, app+" version", last.Version, 2)
		check(t, app+" at", last.At, start.Add(time.Minute))
		check(t, app+" ready at", last.ReadyAt, start.Add(time.Minute+2*time.Second))
		check(t, app+" add-on", last.AddonID, addonA)
		check(t, app+" changed", strings.Join(last.Changed, ","), "MYADDON_KEY,MYADDON_URL")
	}
	check(t, "unknown app", len(e.fake.Releases("nope")), 0)
}

func TestIdenticalWriteMakesNoRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	for range 3 {
		check(t, "status", e.patch(addonA, token, urlVar, "postgres://new").status, 200)
	}
	check(t, "writes", e.fake.ConfigWrites(addonA), 3)
	check(t, "changes", e.fake.ConfigChanges(addonA), 1)
	check(t, "releases", len(e.fake.Releases("app-0123")), 2)
}

func TestDynosRunNewConfigOnlyAfterRestartDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		private bool
		delay   time.Duration
	}{
		{"common runtime", false, 2 * time.Second},
		{"private space", true, 6 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, herokufake.WithDynos(3))
			s := spec(addonA)
			s.PrivateSpace = tt.private
			s.AttachedApps = []string{"other-" + tt.name}
			e.add(s)
			token := e.exchange(addonA).AccessToken
			const oldV, newV = "postgres://old", "postgres://new"
			check(t, "old holders before", e.fake.Holders(urlVar, oldV), herokufake.Holders{Configs: 1, Dynos: 6})

			e.patch(addonA, token, urlVar, newV)
			check(t, "settled after change", e.fake.Settled(), false)
			check(t, "settles at", e.fake.SettledAt(), start.Add(tt.delay))
			check(t, "old holders at release", e.fake.Holders(urlVar, oldV), herokufake.Holders{Configs: 0, Dynos: 6})
			check(t, "new holders at release", e.fake.Holders(urlVar, newV), herokufake.Holders{Configs: 1, Dynos: 0})

			e.clock.Advance(tt.delay - time.Nanosecond)
			check(t, "old holders just before restart", e.fake.Holders(urlVar, oldV).Dynos, 6)
			e.clock.Advance(time.Nanosecond)
			check(t, "old holders after restart", e.fake.Holders(urlVar, oldV), herokufake.Holders{})
			check(t, "new holders after restart", e.fake.Holders(urlVar, newV), herokufake.Holders{Configs: 1, Dynos: 6})
			check(t, "settled", e.fake.Settled(), true)
		})
	}
}

func TestDeprovisionRemovesConfigAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, herokufake.WithRestartDelay(time.Second, 3*time.Second))
	e.add(spec(addonA))
	e.fake.Deprovision(addonA)
	e.fake.Deprovision(addonA)
	check(t, "Config", e.fake.Config(addonA) == nil, true)
	check(t, "releases", len(e.fake.Releases("app-0123")), 2)
	check(t, "holders before restart", e.fake.Holders(urlVar, "postgres://old"), herokufake.Holders{Dynos: 2})
	e.clock.Advance(time.Second)
	check(t, "holders after restart", e.fake.Holders(urlVar, "postgres://old"), herokufake.Holders{})
}

func TestTwoAddonsOnOneApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	b := spec(addonB)
	b.App = "app-0123"
	b.InitialConfig = map[string]string{urlVar: "postgres://b"}
	e.add(b)
	e.clock.Advance(time.Hour)
	token := e.exchange(addonA).AccessToken
	e.patch(addonA, token, urlVar, "postgres://a2")
	e.clock.Advance(time.Hour)
	check(t, "B still running", e.fake.Holders(urlVar, "postgres://b"), herokufake.Holders{Configs: 1, Dynos: 2})
	check(t, "A's new value running", e.fake.Holders(urlVar, "postgres://a2"), herokufake.Holders{Configs: 1, Dynos: 2})
	check(t, "A's old value gone", e.fake.Holders(urlVar, "postgres://old"), herokufake.Holders{})
}
