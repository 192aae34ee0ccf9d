package web

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// Heroku's token endpoint takes the single-use code and answers an access
// token without a refresh_token. The registration is refused, and its
// answer says that the code is spent, with no Retry-After: asking again
// with the same code is refused by Heroku (invalid_grant).
func TestGrantSpentWithoutRefreshTokenIsNotToBeRetried(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"HRKU-00000000-0000-0000-0000-000000000000","expires_in":28799,"token_type":"Bearer"}`))
	}))
	t.Cleanup(srv.Close)
	sealer, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(redistest.New(t).Client, sealer)
	hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
		heroku.WithOAuthClientSecret(secret.New("client-secret")), heroku.WithTokenStore(st))
	if err != nil {
		t.Fatal(err)
	}
	err = registry.New(st, hc).Put(context.Background(), registry.Input{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, OAuthGrant: &registry.Grant{Code: secret.New("01234567-89ab-cdef-0123-456789abcdef")}})
	s := &server{Params: Params{Logger: zerolog.Nop()}}
	w := httptest.NewRecorder()
	s.writeRegistryError(w, httptest.NewRequest(http.MethodPut, "/api/v1/instances/inst-1", nil), err)
	body := w.Body.String()
	if w.Code != http.StatusBadGateway || w.Header().Get("Retry-After") != "" ||
		!strings.Contains(body, "cannot be used again") || strings.Contains(body, "try again") {
		t.Fatalf("answer %d (Retry-After %q) %s; want 502 saying the grant is spent, no Retry-After", w.Code, w.Header().Get("Retry-After"), body)
	}
}
