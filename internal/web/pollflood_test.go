package web_test

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// pollFlood polls /dashboard/status with session up to n times, as fast as
// the test sends, and returns how many were answered 200 and the first
// other answer.
func pollFlood(f *fixture, session *http.Cookie, n int) (int, reply) {
	f.t.Helper()
	for i := range n {
		if r := f.get("/dashboard/status", session); r.status != http.StatusOK {
			return i, r
		}
	}
	return n, reply{}
}

// TestScriptedStatusPollingIsRefused plays a customer scripting the
// dashboard's status poll as fast as the machine allows. Each poll reads
// Redis about ten times (the session's end marks, the instance, its
// rotation, credentials, holds and timeline), and nothing bounded them:
// one customer could load the Redis every add-on's rotations run on. Past
// what a browser's tabs ask for (the page polls every 2 s), polls of a
// session are answered 429 with Retry-After and cost no Redis command;
// other sessions, and the same session once the window passed, are
// served. Sessions of one add-on together are bounded too, since each
// sign-in from Heroku makes one more.
func TestScriptedStatusPollingIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.register("inst-2", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour) // busy: the page polls

	// A tab polling at the page's pace for ten minutes is never refused.
	tab := f.login("inst-1")
	for i := range 300 {
		if r := f.get("/dashboard/status", tab); r.status != http.StatusOK {
			t.Fatalf("poll %d of a tab polling every 2 s: %d %.200s", i, r.status, r.body)
		}
		f.clock.Advance(2 * time.Second)
	}

	script := f.login("inst-1")
	served, refused := pollFlood(f, script, 1000)
	secs, err := strconv.Atoi(refused.header.Get("Retry-After"))
	if refused.status != http.StatusTooManyRequests || err != nil || secs <= 0 {
		t.Fatalf("%d polls served, then %d Retry-After %q; want 429 with Retry-After well before 1000", served, refused.status, refused.header.Get("Retry-After"))
	}
	var commands atomic.Int64
	f.r.Client.AddHook(redistest.OnCommand{Note: func(redis.Cmder) { commands.Add(1) }})
	for range 50 {
		if r := f.get("/dashboard/status", script); r.status != http.StatusTooManyRequests {
			t.Fatalf("a poll of the refused session: %d, want 429", r.status)
		}
	}
	if n := commands.Load(); n != 0 {
		t.Errorf("50 refused polls sent %d Redis commands, want none", n)
	}
	if r := f.get("/dashboard/status", f.login("inst-2")); r.status != http.StatusOK {
		t.Errorf("another add-on's session while one is refused: %d, want 200", r.status)
	}

	// More sign-ins of one add-on, each scripted, are bounded together.
	f.clock.Advance(time.Duration(secs) * time.Second)
	total := 0
	for range 20 {
		n, r := pollFlood(f, f.login("inst-1"), 1000)
		total += n
		if r.status == http.StatusTooManyRequests && n == 0 {
			break
		}
	}
	if total >= 20*served {
		t.Errorf("20 sessions of one add-on got %d polls served in a window, want fewer than %d", total, 20*served)
	}
	f.clock.Advance(2 * time.Minute) // past every window, within the sessions' hour
	if r := f.get("/dashboard/status", script); r.status != http.StatusOK {
		t.Errorf("the refused session once its window passed: %d, want 200", r.status)
	}
}
