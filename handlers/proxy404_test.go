package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
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
