package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// The grant exchange at registration is answered 200 with an access token
// but no refresh_token (a misbehaving token endpoint, or a proxy that drops
// fields). Stored, the token would work for 8 hours and then never again,
// the single-use grant long spent; instead the registration fails at once
// as an unexpected answer, while the partner can still act, and nothing is
// stored.
func TestGrantExchangeWithoutRefreshTokenFailsTheRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth/token" {
			g.fake.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		g.fake.ServeHTTP(rec, r)
		var m map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
			t.Errorf("the fake's exchange: %d %s", rec.Code, rec.Body)
		}
		delete(m, "refresh_token")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m)
	}))
	t.Cleanup(srv.Close)
	hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
		heroku.WithTokenStore(g.st), heroku.WithOAuthClientSecret(secret.New(herokufake.DefaultClientSecret)))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := g.demo.Mint(ctx, "inst-2", "provision")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.fake.AddAddon(herokufake.AddonSpec{ID: "inst-2", App: "app-inst-2", ConfigVars: []string{issuer.DefaultConfigVar},
		InitialConfig: map[string]string{issuer.DefaultConfigVar: cred.Config[issuer.DefaultConfigVar].Reveal()}}); err != nil {
		t.Fatal(err)
	}
	err = registry.New(g.st, hc).Put(ctx, registry.Input{ID: "inst-2", APIVersion: store.APIv3,
		ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: cred.ID,
		OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode("inst-2"))}})
	var exchange *registry.ExchangeError
	if !errors.As(err, &exchange) || !errors.Is(err, heroku.ErrUnexpectedAnswer) || !strings.Contains(err.Error(), "no refresh_token") {
		t.Errorf("registration: %v; want a failed exchange, an unexpected answer naming the missing refresh_token", err)
	}
	if tok, err := g.st.LoadToken(ctx, "inst-2"); !errors.Is(err, heroku.ErrNoToken) {
		t.Errorf("stored token: access set %v, refresh set %v (%v); want none stored",
			!tok.AccessToken.IsZero(), !tok.RefreshToken.IsZero(), err)
	}
}
