package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestSaveRefreshedDoesNotStoreTokensDeletedMeanwhile: a worker refreshes
// an instance's token while the partner's DELETE deprovisions it, which
// deletes the tokens. The refresh is not saved (the call fails with
// ErrNoToken): a deprovisioned instance holds no OAuth tokens (I5).
func TestSaveRefreshedDoesNotStoreTokensDeletedMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := store.Registration{ID: "inst-r", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}
	tok := heroku.Token{AccessToken: secret.New("access-1"), RefreshToken: secret.New("refresh-1"), ExpiresAt: f.now.Add(time.Hour)}
	if err := f.st.Register(ctx, reg, &tok); err != nil {
		t.Fatal(err)
	}
	old, err := f.st.LoadToken(ctx, "inst-r")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Deprovision(ctx, "inst-r"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.LoadToken(ctx, "inst-r"); !errors.Is(err, heroku.ErrNoToken) {
		t.Fatalf("after deprovisioning: %v, want ErrNoToken", err)
	}
	refreshed := heroku.Token{AccessToken: secret.New("access-2"), RefreshToken: secret.New("refresh-1"), ExpiresAt: f.now.Add(8 * time.Hour)}
	if _, err := f.st.SaveRefreshed(ctx, "inst-r", old, refreshed); !errors.Is(err, heroku.ErrNoToken) {
		t.Errorf("SaveRefreshed after the deprovisioning: %v, want ErrNoToken", err)
	}
	if got, err := f.st.LoadToken(ctx, "inst-r"); !errors.Is(err, heroku.ErrNoToken) {
		t.Errorf("a refresh saved after the deprovisioning stored tokens again (access %q): want none kept", got.AccessToken.Reveal())
	}
}
