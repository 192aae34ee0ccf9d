package handlers_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestARefreshDoesNotOverwriteARegistrationMadeMeanwhile: a worker's token
// refresh (after Heroku answered its PATCH 401) is on its way while the
// partner registers the instance again with a new grant (a
// re-authorization). The refresh answers for the old authorization; saved
// over the registration's tokens, it would lose the new authorization, and
// once the old one is revoked the instance would be set aside with
// "register it again" right after it was. The registration's tokens stay.
func TestARefreshDoesNotOverwriteARegistrationMadeMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	before, err := g.st.LoadToken(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	inRefresh, release := g.holdFirst(t, func(r *http.Request) bool {
		return r.URL.Path == "/oauth/token" && r.ParseForm() == nil && r.PostForm.Get("grant_type") == "refresh_token"
	})
	g.fake.ExpireAccessTokens() // the PATCH answers 401: the client refreshes

	done := make(chan error, 1)
	go func() { done <- g.run(rotateTask(t, "inst-1", "rot-1")) }()
	select {
	case <-inRefresh:
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh")
	}
	// The partner registers the instance again with a new grant meanwhile.
	err = g.reg.Put(ctx, registry.Input{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar},
		OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode("inst-1"))}})
	if err != nil {
		t.Fatalf("register again: %v", err)
	}
	registered, _ := g.st.LoadToken(ctx, "inst-1")
	if registered.RefreshToken.Reveal() == before.RefreshToken.Reveal() {
		t.Fatal("the registration stored no new refresh token")
	}
	close(release)
	if err := <-done; err != nil {
		t.Logf("rotation: %v", err)
	}
	after, _ := g.st.LoadToken(ctx, "inst-1")
	if after.RefreshToken.Reveal() != registered.RefreshToken.Reveal() {
		t.Errorf("the registration's new authorization was overwritten by the refresh of the old one (refresh token is the old one: %v)",
			after.RefreshToken.Reveal() == before.RefreshToken.Reveal())
	}
}
