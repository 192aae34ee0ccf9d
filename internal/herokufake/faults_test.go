package herokufake_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func TestScriptedFaultsInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	e.fake.Script(herokufake.PatchConfig, herokufake.Respond(429), herokufake.Respond(500))
	e.fake.Script(herokufake.PatchConfig, herokufake.Respond(503), herokufake.Respond(200))
	want := []struct {
		status int
		id     string
	}{{429, "rate_limit"}, {500, "internal_server_error"}, {503, "service_unavailable"}, {200, ""}, {200, ""}}
	for i, w := range want {
		r := e.patch(addonA, token, urlVar, "postgres://new")
		check(t, "status", r.status, w.status)
		check(t, "error id", r.err.ID, w.id)
		if i == 0 {
			check(t, "Retry-After on scripted 429", r.header.Get("Retry-After"), "")
		}
		if i < 3 && e.fake.ConfigWrites(addonA) != 0 {
			t.Fatalf("scripted %d applied the change", w.status)
		}
	}
	check(t, "get config unscripted", e.v3(http.MethodGet, "/addons/"+addonA+"/config", token, "").status, 200)
	check(t, "writes", e.fake.ConfigWrites(addonA), 2)
	s := e.fake.Stats()
	check(t, "patch 200s", s.Calls[herokufake.CallKey{Endpoint: herokufake.PatchConfig, Status: 200}], 2)
	check(t, "patch 500s", s.Calls[herokufake.CallKey{Endpoint: herokufake.PatchConfig, Status: 500}], 1)
	check(t, "429s", s.RateLimited, 1)
	check(t, "total", s.Total, 7)
}

func TestHangEndsWithClientContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	e.fake.Script(herokufake.PatchConfig, herokufake.Hang())

	// Long enough for the call to reach the fake on a loaded machine: one
	// the client gave up on before it arrived never hangs there.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	req := e.request(http.MethodPatch, "/addons/"+addonA+"/config", `{"config":[{"name":"MYADDON_URL","value":"x"}]}`)
	req.Header.Set("Accept", "application/vnd.heroku+json; version=3")
	req.Header.Set("Authorization", "Bearer "+token)
	_, err := e.srv.Client().Do(req.WithContext(ctx))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung call error = %v, want the client's deadline", err)
	}
	hung := herokufake.CallKey{Endpoint: herokufake.PatchConfig, Status: 0}
	waitFor(t, func() bool { return e.fake.Stats().Calls[hung] == 1 })
	check(t, "writes", e.fake.ConfigWrites(addonA), 0)
	check(t, "next call answered", e.patch(addonA, token, urlVar, "x").status, 200)
}

func TestDelayThenAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	e.fake.Script(herokufake.GetConfig, herokufake.Delay(20*time.Millisecond))
	check(t, "delayed status", e.v3(http.MethodGet, "/addons/"+addonA+"/config", token, "").status, 200)
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []int {
		e := newEnv(t, herokufake.WithErrorRate(0.5, seed))
		e.add(spec(addonA))
		var statuses []int
		for range 20 {
			r := e.v3(http.MethodGet, "/account/rate-limits", "", "")
			statuses = append(statuses, r.status)
		}
		return statuses
	}
	first, again := run(7), run(7)
	var errs int
	for i, s := range first {
		check(t, "same seed, same answer", again[i], s)
		if s == 500 {
			errs++
		}
	}
	if errs == 0 || errs == len(first) {
		t.Errorf("%d of %d calls failed, want some but not all", errs, len(first))
	}
}

func TestErrorRateChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, herokufake.WithErrorRate(1, 1))
	e.add(v1Spec())
	r := e.v1(http.MethodPut, "/vendor/apps/app123%40heroku.com", herokufake.DefaultManifestID,
		herokufake.DefaultManifestPassword, `{"config":{"MYADDON_URL":"postgres://new"}}`)
	check(t, "status", r.status, 500)
	check(t, "value", e.fake.Config(addonA)[urlVar], "postgres://old")
}

// waitFor polls cond until it holds or a deadline passes. The deadline is
// generous: on a loaded machine the server may take seconds to notice a
// client that hung up.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Echo repeats the request's config values in the error message and
// changes nothing, for V3 and V1 alike.
func TestEchoRepeatsTheValuesSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	e.fake.Script(herokufake.PatchConfig, herokufake.Echo(422))
	r := e.patch(addonA, token, urlVar, "postgres://u:echoed-pw@db/x")
	check(t, "status", r.status, 422)
	if !strings.Contains(r.err.Message, "postgres://u:echoed-pw@db/x") {
		t.Errorf("message %q does not echo the value sent", r.err.Message)
	}
	check(t, "writes", e.fake.ConfigWrites(addonA), 0)
}
