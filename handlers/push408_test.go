package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

// A front before Heroku built on Envoy (an egress gateway, a service mesh)
// answers 408 "stream timeout" when Heroku has sent no answer's headers
// within its stream idle timeout: the push was handed to Heroku, which may
// still apply it. That 408 is no refusal: the push stays unsettled, so the
// config read back after a later push is refused, before the first one
// lands, proves nothing, and the credential Heroku then holds is kept, not
// revoked (I1).
func TestAPush408AfterItWasPassedOnKeepsItsCredential(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	landed := g.firstPushLandsLate(t, 5*time.Second, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusRequestTimeout)
		_, _ = w.Write([]byte("stream timeout"))
	})
	// The next push is refused; the first lands seconds later.
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(422))
	var err error
	for range 3 { // asynq's retries, run at once
		if err = g.run(rotateTask(t, "inst-1", "rot-1")); err == nil || isPermanent(err) {
			break
		}
		t.Logf("run: %v", err)
	}
	if !isPermanent(err) {
		t.Fatalf("runs (408, then 422) = %v, want a permanent failure", err)
	}
	g.keptUntilTheLatePushLands(t, "rot-1", landed)
}

// A slow Heroku behind such a front answers every push of a wave 408
// "stream timeout", without Heroku's error id: no answer in time, as a 504
// is, which bears on Heroku's load and not on the account. It is no
// denial, and never opens the breaker, which only an operator closes.
func TestPushesAnswered408ByAFrontOpenNoBreaker(t *testing.T) {
	t.Parallel()
	s := breakerAfterThreePushes(t, "t", func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch {
			return false
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusRequestTimeout)
		_, _ = w.Write([]byte("stream timeout"))
		return true
	})
	if s.Open || s.Window.Denied != 0 {
		t.Fatalf("breaker after three instances' pushes answered 408 by a front: %+v; want closed, no denial", s)
	}
}

// So is a 408 to the token refresh a push needs after Heroku's 401: no
// answer in time from the token endpoint, which names no client secret
// refused, and no denial for the breaker.
func TestRefreshesAnswered408ByAFrontOpenNoBreaker(t *testing.T) {
	t.Parallel()
	s := breakerAfterThreePushes(t, "r", func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodPatch:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"id":"unauthorized","message":"Invalid credentials provided."}`))
		case r.URL.Path == "/oauth/token":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusRequestTimeout)
			_, _ = w.Write([]byte("stream timeout"))
		default:
			return false
		}
		return true
	})
	if s.Open || s.Window.Denied != 0 {
		t.Fatalf("breaker after three instances' token refreshes answered 408 by a front: %+v; want closed, no denial", s)
	}
}
