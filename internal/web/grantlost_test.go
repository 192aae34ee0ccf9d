package web_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

// A grant's exchange that Heroku's token endpoint took, but whose answer
// was lost on the way back (a 502 or 504 of a proxy after Heroku answered,
// a 408 of a front whose stream timed out, a body cut short), spent the
// single-use code all the same. The 503 said "nothing was stored, try
// again", and the same code, tried again, was refused by Heroku: the
// answer must say the code may be spent and what to do then. Refused as
// used, the 422 says codes are single use and a new grant is needed. A
// 429, which Heroku answers without taking the code, still says try again.
func TestAGrantExchangeAnswerLostSaysTheCodeMayBeSpent(t *testing.T) {
	t.Parallel()
	for _, lose := range []string{"502", "408", "cut"} {
		t.Run(lose, func(t *testing.T) {
			t.Parallel()
			var losing atomic.Bool
			losing.Store(true)
			f, code := grantBehindFront(t, func(w http.ResponseWriter, r *http.Request, fake *herokufake.Fake) bool {
				if r.URL.Path != "/oauth/token" || !losing.Load() {
					return false
				}
				rec := httptest.NewRecorder()
				fake.ServeHTTP(rec, r) // Heroku takes the code.
				switch lose {
				case "cut":
					body := rec.Body.Bytes()
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					w.WriteHeader(http.StatusOK)
					_, _ = w.Write(body[:len(body)/2])
				default:
					status, _ := strconv.Atoi(lose)
					w.WriteHeader(status)
				}
				return true
			})
			resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
			if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" ||
				!strings.Contains(resp.body, "may already have been used") || !strings.Contains(resp.body, "re-provision the add-on") {
				t.Fatalf("PUT whose exchange answer was lost (%s): %d %s; want 503 with Retry-After, saying the code may be spent and what to do then", lose, resp.status, resp.body)
			}
			losing.Store(false)
			resp = f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
			if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, "Heroku refused the oauth_grant") ||
				!strings.Contains(resp.body, "single use") || !strings.Contains(resp.body, "re-provision the add-on") {
				t.Fatalf("the same PUT again: %d %s; want 422 saying codes are single use and to re-provision", resp.status, resp.body)
			}
		})
	}
	t.Run("429", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
			t.Fatal(err)
		}
		code := f.fake.GrantCode("inst-1")
		f.fake.Script(herokufake.OAuthToken, herokufake.Respond(http.StatusTooManyRequests))
		resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
		if resp.status != http.StatusServiceUnavailable || strings.Contains(resp.body, "re-provision") {
			t.Fatalf("PUT whose exchange Heroku answered 429: %d %s; want 503, try again", resp.status, resp.body)
		}
		if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code)); resp.status != http.StatusOK {
			t.Fatalf("the same PUT after a 429: %d %s; want 200", resp.status, resp.body)
		}
	})
}
