package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/store"
)

// An egress proxy named by HEROKU_API_URL that answers a route it does not
// pass on with a 404 of its own (its page, Go's "404 page not found", a
// gateway's {"message":"Not Found"}) says nothing of the add-on: Heroku's
// own 404 carries its error id. Taken for Heroku's, the push's 404 and the
// add-on's 404 set every instance of the fleet that rotated aside as
// "missing", one by one, the breaker never opening (a 404 is no denial).
func TestAProxys404SetsNoInstanceAside(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]struct{ ct, body string }{
		"nginx page":   {"text/html", "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>"},
		"go mux":       {"text/plain; charset=utf-8", "404 page not found\n"},
		"gateway json": {"application/json", `{"message":"Not Found"}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/addons/") {
					w.Header().Set("Content-Type", answer.ct)
					w.WriteHeader(http.StatusNotFound)
					_, _ = w.Write([]byte(answer.body))
					return
				}
				g.fake.ServeHTTP(w, r)
			}), 5*time.Second)
			err := g.run(rotateTask(t, "inst-1", "rot-1"))
			t.Logf("run: %v", err)
			in, _ := g.st.Instance(ctx, "inst-1")
			if in.Quarantined() || in.Deprovisioned() {
				t.Errorf("after a proxy's 404 (%s): quarantined %v (%q), deprovisioned %v; want neither",
					name, in.Quarantined(), in.QuarantineReason, in.Deprovisioned())
			}
		})
	}
}

// breakerAfterThreePushes rotates three new instances, each push answered
// by heroku (what it does not answer goes to the fake Heroku), with a real
// breaker that opens at three distinct instances, and returns its status.
func breakerAfterThreePushes(t *testing.T, prefix string, heroku func(w http.ResponseWriter, r *http.Request) bool) breaker.Status {
	t.Helper()
	g := newRig(t)
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !heroku(w, r) {
			g.fake.ServeHTTP(w, r)
		}
	}), 5*time.Second)
	b, err := breaker.New(breaker.Params{Store: g.st, Queues: asynq.NewInspectorFromRedisClient(g.rdb), Logger: zerolog.Nop(),
		Policy: store.BreakerPolicy{Threshold: 3, Fraction: 0.5, Window: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	g.deps.Breaker = b
	for i := range 3 {
		id := fmt.Sprintf("inst-%s%d", prefix, i)
		g.provision(t, id, g.reg)
		_ = g.run(rotateTask(t, id, "rot-"+id))
	}
	s, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The same proxy answering every push of the fleet with its own 404 page
// is no customer's add-on gone but a HEROKU_API_URL that does not reach
// Heroku: across instances it opens the breaker, which pauses the wave and
// the schedule, where each rotation would fail alone and, cycle after
// cycle, count towards its instance's quarantine.
func TestAProxyAnsweringEveryPushOpensTheBreaker(t *testing.T) {
	t.Parallel()
	s := breakerAfterThreePushes(t, "p", func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch && !strings.HasPrefix(r.URL.Path, "/addons/") {
			return false
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<html><body><h1>404 Not Found</h1></body></html>"))
		return true
	})
	if !s.Open || !strings.Contains(s.Reason, "3 of 3 distinct instances answered in ways Heroku never does") {
		t.Fatalf("breaker after three pushes answered by a proxy's 404 page: %+v; want open, naming answers not Heroku's", s)
	}
}

// Heroku refusing the pushes of several customers' add-ons with an error
// id of its own that rekey does not list (a push's answer keeps only the
// ids it lists: any other word could be an app's password) is still
// Heroku's answer, each add-on's own: it counts as one, and never opens
// the breaker, as a 422 invalid_params does not.
func TestHerokusRefusalWithAnUnlistedIDOpensNoBreaker(t *testing.T) {
	t.Parallel()
	s := breakerAfterThreePushes(t, "u", func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "01234567-89ab-cdef-0123-456789abcdef")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"id":"config_vars_locked","message":"This app's config vars are locked."}`))
		return true
	})
	if s.Open || s.Window.Denied != 0 {
		t.Fatalf("breaker after three pushes Heroku refused 422 config_vars_locked: %+v; want closed, no denial", s)
	}
}
