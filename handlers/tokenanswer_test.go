package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A refresh of the add-on's token answered with what is not Heroku's token
// answer (a 200 without an access token, a page, a redirect: a proxy
// before the token endpoint, a HEROKU_ID_URL naming another host) says
// nothing of the add-on's authorization, as a 4xx that names no grant
// does (heroku.ErrTokenDenied): the run is retried, and the rotation goes
// on once the token endpoint answers as Heroku's does, where it failed for
// good and its credential was discarded.
func TestARefreshAnsweredWithWhatIsNotHerokusIsRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"200 without an access token", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"expires_in":28799}`))
		}},
		{"200 page", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`<html>sign in to the proxy</html>`))
		}},
		{"302", func(w http.ResponseWriter) {
			w.Header().Set("Location", "https://sso.example.com/login")
			w.WriteHeader(http.StatusFound)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			var broken atomic.Bool
			broken.Store(true)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/oauth/token" && broken.Load() {
					_, _ = io.Copy(io.Discard, r.Body)
					tc.answer(w)
					return
				}
				g.fake.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
				heroku.WithTokenStore(g.st), heroku.WithOAuthClientSecret(secret.New(herokufake.DefaultClientSecret)))
			if err != nil {
				t.Fatal(err)
			}
			g.deps.Heroku = hc
			g.fake.ExpireAccessTokens() // the PATCH answers 401: the client refreshes

			if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil || isPermanent(err) {
				t.Fatalf("run with the token endpoint answering %s: %v; want a failure asynq retries", tc.name, err)
			}
			if rot, _ := g.st.Rotation(ctx, "rot-1"); rot.State == store.RotationFailed {
				t.Fatalf("rotation %s (%s); want it still in flight", rot.State, rot.Error)
			}
			broken.Store(false)
			if err := g.run(rotateTask(t, "inst-1", "rot-1")); err != nil {
				t.Fatal(err)
			}
			rot, _ := g.st.Rotation(ctx, "rot-1")
			if held := g.configCredential(t, "inst-1"); rot.State != store.RotationPromoted || held != rot.CredentialID {
				t.Errorf("rotation %s, Heroku holds %s; want promoted, holding %s", rot.State, held, rot.CredentialID)
			}
		})
	}
}
