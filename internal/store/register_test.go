package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

func TestRegisterStoresInstanceAndTokensTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}}

	before := redistest.Dump(t, f.r)
	if err := f.st.Register(ctx, reg, nil); !errors.Is(err, store.ErrTokenRequired) {
		t.Fatalf("first V3 registration without tokens: %v, want ErrTokenRequired", err)
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Fatalf("a refused registration changed Redis:\n%s", after)
	}
	tok := heroku.Token{AccessToken: secret.New("access-1"), RefreshToken: secret.New("refresh-1"), ExpiresAt: f.now.Add(time.Hour)}
	if err := f.st.Register(ctx, reg, &tok); err != nil {
		t.Fatal(err)
	}
	got, err := f.st.LoadToken(ctx, "inst-1")
	if err != nil || got.RefreshToken.Reveal() != "refresh-1" || !got.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Fatalf("LoadToken = %+v, %v", got, err)
	}
	// An update of a live instance that holds tokens may omit them.
	reg.ConfigVars = []string{"MYADDON_URL", "MYADDON_KEY"}
	if err := f.st.Register(ctx, reg, nil); err != nil {
		t.Fatalf("update without tokens: %v", err)
	}
	if got, err := f.st.LoadToken(ctx, "inst-1"); err != nil || got.RefreshToken.Reveal() != "refresh-1" {
		t.Fatalf("tokens after the update: %v", err)
	}
	// V1 instances need none.
	v1 := store.Registration{ID: "inst-2", APIVersion: store.APIv1, HerokuID: "app-2", ConfigVars: []string{"MYADDON_URL"}}
	if err := f.st.Register(ctx, v1, nil); err != nil {
		t.Fatalf("V1 registration: %v", err)
	}
}
