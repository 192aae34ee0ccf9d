package web_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// password is the i-th of an attacker's guesses at a password, and bearer
// at the API token: each guess differs, as a guesser's do.
func password(i int) string { return basic("ops", "guess-"+strconv.Itoa(i)) }
func bearer(i int) string   { return "Bearer guess-" + strconv.Itoa(i) + "-0123456789" }

// guess sends one request to path with auth, from the client Heroku's
// router names in X-Forwarded-For (after whatever the client sent itself).
func (f *fixture) guess(path, auth, from string) reply {
	f.t.Helper()
	return f.do(http.MethodGet, path, nil, http.Header{"Authorization": {auth}, "X-Forwarded-For": {"10.9.9.9, " + from}})
}

// TestWrongPasswordsFromOneClientAreThrottled plays an attacker guessing
// the operators' password, and the API token, at full speed: after a few
// failures within the window, every guess from its address is answered 429
// with Retry-After, the right password included (else the 429 would say
// which guesses were wrong), while operators elsewhere still sign in; once
// the window passes, the attacker is answered as anyone.
func TestWrongPasswordsFromOneClientAreThrottled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const attacker, operator = "198.51.100.7", "203.0.113.5"
	for _, tc := range []struct {
		path      string
		wrong     func(int) string
		right     string
		wantRight int
	}{
		{"/monitoring/api/queues", password, basic("ops", dashPassword), http.StatusOK},
		{"/metrics", password, basic("ops", dashPassword), http.StatusOK},
		{"/api/v1/instances", bearer, "Bearer " + apiToken, http.StatusOK},
		// A path the API refuses after checking the token checks it too.
		{"/api/v1//instances", bearer, "Bearer " + apiToken, http.StatusBadRequest},
	} {
		t.Run(tc.path, func(t *testing.T) {
			from := attacker + tc.path // a client of its own per path
			var throttled reply
			for i := 0; i < 50; i++ {
				if throttled = f.guess(tc.path, tc.wrong(i), from); throttled.status != http.StatusUnauthorized {
					break
				}
			}
			secs, err := strconv.Atoi(throttled.header.Get("Retry-After"))
			if throttled.status != http.StatusTooManyRequests || err != nil || secs <= 0 {
				t.Fatalf("50 wrong guesses from one client: last got %d Retry-After %q, want 429 with Retry-After", throttled.status, throttled.header.Get("Retry-After"))
			}
			if r := f.guess(tc.path, tc.right, from); r.status != http.StatusTooManyRequests {
				t.Errorf("right credential from the throttled client: got %d, want 429", r.status)
			}
			if r := f.guess(tc.path, tc.right, operator); r.status != tc.wantRight {
				t.Errorf("right credential from another client: got %d %.200s, want %d", r.status, r.body, tc.wantRight)
			}
		})
	}
	f.clock.Advance(2 * time.Minute)
	if r := f.guess("/metrics", basic("ops", dashPassword), attacker+"/metrics"); r.status != http.StatusOK {
		t.Errorf("right password after the window passed: got %d, want 200", r.status)
	}
}

// TestOneClientWrittenManyWaysIsThrottledOnce plays an attacker whose
// address reaches X-Forwarded-For in more than one form: with a port a
// proxy added, IPv4-mapped IPv6, IPv6 spelled differently, or a fresh
// address of the IPv6 /64 one machine is given. Each form is the one
// client, throttled after maxFailures guesses in all, not per spelling.
func TestOneClientWrittenManyWaysIsThrottledOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for name, forms := range map[string][]string{
		"ipv4 with ports": {"198.51.100.7:40001", "198.51.100.7:40002", "198.51.100.7", "[::ffff:198.51.100.7]:1", "::ffff:198.51.100.7"},
		"ipv6 spellings":  {"2001:db8::1", "2001:DB8:0:0:0:0:0:1", "[2001:db8::1]:443", "2001:0db8::0001"},
		"one ipv6 /64":    {"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:2:abcd:1:2:3"},
	} {
		t.Run(name, func(t *testing.T) {
			var last reply
			for i := 0; i < 4*len(forms); i++ {
				last = f.guess("/metrics", password(i), forms[i%len(forms)])
			}
			if last.status != http.StatusTooManyRequests {
				t.Errorf("%d wrong guesses from one client written as %q: last got %d, want 429", 4*len(forms), forms, last.status)
			}
		})
	}
}

// TestSeveralForwardedForHeadersDoNotEscapeTheThrottle plays an attacker
// sending X-Forwarded-For twice, with a fresh address in the second:
// Heroku's router appends the client's address to the first and passes the
// second on as the client wrote it, so the last entry of the last header
// is the attacker's to choose. The attacker is throttled all the same, and
// the address it writes there (an operator's) is not.
func TestSeveralForwardedForHeadersDoNotEscapeTheThrottle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const attacker, operator = "198.51.100.7", "203.0.113.5"
	var last reply
	for i := 0; i < 50; i++ {
		written := operator
		if i%2 == 1 {
			written = "192.0.2." + strconv.Itoa(i)
		}
		last = f.do(http.MethodGet, "/metrics", nil, http.Header{"Authorization": {password(i)},
			"X-Forwarded-For": {"10.9.9.9, " + attacker, written}})
		if last.status != http.StatusUnauthorized {
			break
		}
	}
	if last.status != http.StatusTooManyRequests {
		t.Errorf("50 wrong guesses with a second X-Forwarded-For: last got %d, want 429", last.status)
	}
	if r := f.guess("/metrics", basic("ops", dashPassword), operator); r.status != http.StatusOK {
		t.Errorf("the operator whose address the attacker wrote: got %d, want 200", r.status)
	}
}

// TestAStaleCredentialRepeatedDoesNotLockItsAddressOut plays a producer
// left on an API token that was just rotated, sending it again and again
// from an address it shares with producers that have the new one (Heroku's
// dynos share egress addresses): the one wrong token is refused each time
// (401), never counted as more than one guess, and the right token from
// the same address is served. Different wrong tokens from that address
// are still guesses, and are throttled.
func TestAStaleCredentialRepeatedDoesNotLockItsAddressOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	from := func(token string) reply { return f.guess("/api/v1/instances/inst-1", "Bearer "+token, "198.51.100.20") }
	for i := range 3 * 10 {
		if r := from("stale-api-token-0123456789"); r.status != http.StatusUnauthorized {
			t.Fatalf("the stale token, request %d: %d, want 401", i+1, r.status)
		}
	}
	if r := from(apiToken); r.status != http.StatusOK {
		t.Fatalf("the right token from the stale producer's address: %d %.200s, want 200", r.status, r.body)
	}
	var last reply
	for i := range 10 {
		last = f.guess("/api/v1/instances/inst-1", bearer(i), "198.51.100.20")
	}
	if last.status != http.StatusTooManyRequests {
		t.Errorf("ten different wrong tokens: the last answered %d, want 429", last.status)
	}
}
