package breaker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/secret"
)

// A V1 push answered 200 whose read-back Heroku answers 503, or answers
// with the config from before the push (a read that lags behind the
// write, which Heroku's documentation neither rules out nor promises), is
// no answer "Heroku never gives": the 503 is counted as a 5xx is (not at
// all), the lagging config as an answer, neither as a denial. Counted as
// denials, a V1 wave met by either opened the breaker and paused every bulk
// rotation, its reason asking whether HEROKU_API_URL is Heroku's. A
// read-back answered with something that is not an app's config (a page)
// still counts.
func TestV1ReadBacksThatFailOrLagAreNoDenials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	fake := herokufake.New()
	// lagging names the heroku_ids whose read answers the config from
	// before the push, failing those whose read answers 503, paged those
	// whose read answers an HTML page.
	lagging, failing, paged := map[string]bool{}, map[string]bool{}, map[string]bool{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/vendor/apps/")
		switch {
		case r.Method != http.MethodGet || id == r.URL.Path:
		case lagging[id]:
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"id":%q,"name":"app","config":{"MYADDON_URL":"postgres://u:old@db/x"}}`, id)
			return
		case failing[id]:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"id":"service_unavailable","message":"Heroku is temporarily unavailable."}`))
			return
		case paged[id]:
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`<html><body>Sign in</body></html>`))
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c, err := heroku.NewClient(heroku.WithAPIURL(front.URL),
		heroku.WithV1Credentials(herokufake.DefaultManifestID, secret.New(herokufake.DefaultManifestPassword)))
	if err != nil {
		t.Fatal(err)
	}
	push := func(n int, mark map[string]bool) {
		t.Helper()
		id := fmt.Sprintf("%08d-89ab-cdef-0123-456789abcdef", n)
		herokuID := fmt.Sprintf("app%d@heroku.com", n)
		if err := fake.AddAddon(herokufake.AddonSpec{ID: id, App: fmt.Sprintf("app-%d", n), HerokuID: herokuID,
			ConfigVars: []string{"MYADDON_URL"}, InitialConfig: map[string]string{"MYADDON_URL": "postgres://u:old@db/x"}}); err != nil {
			t.Fatal(err)
		}
		mark[strings.ReplaceAll(herokuID, "@", "%40")], mark[herokuID] = true, true
		err := c.UpdateConfig(ctx, heroku.Target{AddonID: id, APIVersion: heroku.APIVersionV1, HerokuID: herokuID},
			[]heroku.ConfigVar{{Name: "MYADDON_URL", Value: secret.New(fmt.Sprintf("postgres://u:new%d@db/x", n))}})
		if err == nil {
			t.Fatalf("push %d confirmed by a read-back that does not hold it", n)
		}
		g.b.Observe(ctx, id, err)
	}
	for n := range 6 {
		push(n, lagging)
	}
	for n := 6; n < 12; n++ {
		push(n, failing)
	}
	s, err := g.b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Open || s.Window.Denied != 0 || s.Window.Answered != 6 {
		t.Fatalf("status = %+v, window %+v; want closed, the 6 lagging reads answered, none denied", s, s.Window)
	}
	push(12, paged)
	if s, _ := g.b.Status(ctx); s.Window.Denied != 1 {
		t.Fatalf("window = %+v; want the paged read-back counted a denial", s.Window)
	}
}
