package herokufake_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func remainingHeader(t *testing.T, r reply) int {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("RateLimit-Remaining"))
	if err != nil {
		t.Fatalf("RateLimit-Remaining %q: %v", r.header.Get("RateLimit-Remaining"), err)
	}
	return n
}

func TestBucketEmptiesThenRefills(t *testing.T) {
	t.Parallel()
	e := newEnv(t, herokufake.WithBucket(3, 1, time.Second))
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	for want := 2; want >= 0; want-- {
		r := e.patch(addonA, token, urlVar, "v"+strconv.Itoa(want))
		check(t, "status", r.status, 200)
		check(t, "RateLimit-Remaining", remainingHeader(t, r), want)
	}
	r := e.patch(addonA, token, urlVar, "refused")
	check(t, "empty bucket status", r.status, 429)
	check(t, "empty bucket id", r.err.ID, "rate_limit")
	check(t, "Retry-After", r.header.Get("Retry-After"), "")
	check(t, "RateLimit-Remaining when empty", remainingHeader(t, r), 0)
	check(t, "refused change applied", e.fake.Config(addonA)[urlVar], "v0")

	e.clock.Advance(999 * time.Millisecond)
	check(t, "status before a token refilled", e.patch(addonA, token, urlVar, "x").status, 429)
	e.clock.Advance(time.Millisecond)
	check(t, "status once a token refilled", e.patch(addonA, token, urlVar, "x").status, 200)
	e.clock.Advance(time.Hour)
	check(t, "refill stops at capacity", e.fake.Remaining(""), 3)
	check(t, "429s counted", e.fake.Stats().RateLimited, 2)
}

func TestRemainingDecreasesFromDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	for want := 4499; want >= 4497; want-- {
		check(t, "RateLimit-Remaining", remainingHeader(t, e.patch(addonA, token, urlVar, "v")), want)
	}
	var body struct{ Remaining int }
	r := e.v3(http.MethodGet, "/account/rate-limits", "", "")
	decode(t, r.body, &body)
	check(t, "rate-limits remaining", body.Remaining, 4497)
	check(t, "rate-limits takes no token", e.fake.Remaining(""), 4497)
	e.clock.Advance(800 * time.Millisecond) // 75 per minute: one token each 800ms
	check(t, "refilled", e.fake.Remaining(""), 4498)
}

func TestBucketScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  []herokufake.Option
		wantB int // RateLimit-Remaining on add-on B's first call after A's three
	}{
		{"one bucket per account", nil, 3},
		{"one bucket per add-on", []herokufake.Option{herokufake.WithPerAddonBuckets()}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, append(tt.opts, herokufake.WithBucket(7, 1, time.Hour))...)
			e.add(spec(addonA))
			e.add(spec(addonB))
			a, b := e.exchange(addonA).AccessToken, e.exchange(addonB).AccessToken
			for range 3 {
				e.patch(addonA, a, urlVar, "v")
			}
			check(t, "B's RateLimit-Remaining", remainingHeader(t, e.patch(addonB, b, urlVar, "v")), tt.wantB)
		})
	}
}

func TestConcurrentCallsNeverOverdrawTheBucket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, herokufake.WithBucket(50, 1, time.Hour))
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	var wg sync.WaitGroup
	for i := range 80 {
		wg.Go(func() { e.patch(addonA, token, urlVar, strconv.Itoa(i)) })
	}
	wg.Wait()
	s := e.fake.Stats()
	check(t, "accepted", s.Calls[herokufake.CallKey{Endpoint: herokufake.PatchConfig, Status: 200}], 50)
	check(t, "refused", s.RateLimited, 30)
	check(t, "writes", e.fake.ConfigWrites(addonA), 50)
}

func TestMaxInWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(spec(addonA))
	token := e.exchange(addonA).AccessToken
	for _, step := range []time.Duration{0, 10 * time.Second, 50 * time.Second, time.Second, 30 * time.Second} {
		e.clock.Advance(step)
		e.patch(addonA, token, urlVar, "v")
	}
	// Calls at 0s, 10s, 60s, 61s, 91s.
	check(t, "max in 1m", e.fake.MaxInWindow(time.Minute, herokufake.PatchConfig), 3)
	check(t, "max in 1s", e.fake.MaxInWindow(time.Second, herokufake.PatchConfig), 2)
	check(t, "call times", len(e.fake.CallTimes(herokufake.PatchConfig)), 5)
	check(t, "all endpoints", len(e.fake.CallTimes()), 6)
}
