package heroku_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

// anyTokens is a TokenStore holding the same token for every add-on.
type anyTokens struct{}

func (anyTokens) LoadToken(context.Context, string) (heroku.Token, error) { return validToken(), nil }
func (anyTokens) SaveToken(context.Context, string, heroku.Token) error   { return nil }

// Heroku answers 401 to the tokens of add-ons whose grant was revoked (a
// customer removed the add-on's authorization, the add-on is on its way out)
// and invalid_grant to their refresh. The client remembers each such token
// so as to refresh before it uses it again, but a process that meets
// thousands over the days it runs must not keep every one of them: an
// add-on deprovisioned never has its memory replaced by a newer token.
func TestRefusedTokensAreRememberedWithinABound(t *testing.T) {
	t.Parallel()
	var patches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/oauth/token":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"revoked"}`))
		case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/addons/"):
			patches.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"id":"unauthorized","message":"Invalid credentials provided."}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL+"/"), heroku.WithHTTPClient(srv.Client()),
		heroku.WithOAuthClientSecret(secret.New(clientSecret)), heroku.WithTokenStore(anyTokens{}),
		heroku.WithClock((&fixedClock{now: epoch}).Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const addons = 3000
	for i := range addons {
		target := heroku.Target{AddonID: "01234567-89ab-cdef-0123-" + strconv.Itoa(100000000000+i), APIVersion: "v3"}
		if err := c.UpdateConfig(ctx, target, oneVar()); !heroku.IsTokenUnusable(err) {
			t.Fatalf("add-on %d: %v; want its token refused", i, err)
		}
	}
	if n := c.RefusedRemembered(); n > 1024 {
		t.Fatalf("after %d add-ons' tokens were refused, the client remembers %d; want at most 1024", addons, n)
	}
	// The last refused is still remembered: its next call refreshes
	// first, and spends no call on the token Heroku refused.
	before := patches.Load()
	target := heroku.Target{AddonID: "01234567-89ab-cdef-0123-" + strconv.Itoa(100000000000+addons-1), APIVersion: "v3"}
	if err := c.UpdateConfig(ctx, target, oneVar()); !heroku.IsTokenUnusable(err) {
		t.Fatalf("the last add-on again: %v; want its token refused", err)
	}
	if n := patches.Load() - before; n != 0 {
		t.Fatalf("the last add-on again sent %d PATCHes with the token Heroku refused; want 0", n)
	}
}
