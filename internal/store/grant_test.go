package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestClaimGrant walks a grant code through a registration: claimed, busy
// for a second registration with it, registered once stored, and claimed
// again only when it no longer stands for the instance's tokens.
func TestClaimGrant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}}
	code, other := secret.New("grant-code-1"), secret.New("grant-code-2")
	tok := heroku.Token{AccessToken: secret.New("access-1"), RefreshToken: secret.New("refresh-1"), ExpiresAt: f.now.Add(time.Hour)}
	claim := func(id string, c secret.String, want store.GrantClaim) {
		t.Helper()
		if got, err := f.st.ClaimGrant(ctx, id, c); err != nil || got != want {
			t.Fatalf("ClaimGrant(%s) = %v, %v; want %v", id, got, err, want)
		}
	}

	claim("inst-1", code, store.GrantClaimed)
	claim("inst-1", code, store.GrantBusy)
	if err := f.st.ReleaseGrant(ctx, "inst-1", code); err != nil {
		t.Fatal(err)
	}
	claim("inst-1", code, store.GrantClaimed)
	if err := f.st.RegisterGrant(ctx, reg, tok, code); err != nil {
		t.Fatal(err)
	}
	claim("inst-1", code, store.GrantAlreadyRegistered)
	claim("inst-1", code, store.GrantAlreadyRegistered) // asking changes nothing
	claim("inst-2", code, store.GrantClaimed)           // a code names one instance's registration
	if err := f.st.ReleaseGrant(ctx, "inst-1", code); err != nil {
		t.Fatal(err)
	}
	claim("inst-1", code, store.GrantAlreadyRegistered) // a release drops only a claim
	if dump := redistest.Dump(t, f.r); strings.Contains(dump, code.Reveal()) {
		t.Fatal("Redis holds the grant code in clear")
	}

	// Tokens sent without a grant replace the ones the code stood for.
	if err := f.st.Register(ctx, reg, &tok); err != nil {
		t.Fatal(err)
	}
	claim("inst-1", code, store.GrantClaimed)
	if err := f.st.RegisterGrant(ctx, reg, tok, code); err != nil {
		t.Fatal(err)
	}
	// Another code (a mistaken one, which Heroku refuses) is claimed and
	// released without the instance forgetting the code that registered it.
	claim("inst-1", other, store.GrantClaimed)
	claim("inst-1", code, store.GrantAlreadyRegistered)
	if err := f.st.ReleaseGrant(ctx, "inst-1", other); err != nil {
		t.Fatal(err)
	}
	claim("inst-1", code, store.GrantAlreadyRegistered)
	// Registered with the other code, the instance stands for that one.
	claim("inst-1", other, store.GrantClaimed)
	if err := f.st.RegisterGrant(ctx, reg, tok, other); err != nil {
		t.Fatal(err)
	}
	claim("inst-1", other, store.GrantAlreadyRegistered)
	claim("inst-1", code, store.GrantClaimed)
	if err := f.st.RegisterGrant(ctx, reg, tok, code); err != nil {
		t.Fatal(err)
	}
	// A deprovisioned instance holds no tokens: the code stands for none.
	if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	claim("inst-1", code, store.GrantClaimed)
}

// TestClaimGrantAcrossKeyRotation: a code registered under the old first
// encryption key is still known once a new key is put first.
func TestClaimGrantAcrossKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	oldKey, newKey := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	before, _ := seal.New(oldKey)
	after, _ := seal.New(newKey, oldKey)
	reg := store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}}
	code := secret.New("grant-code-1")
	tok := heroku.Token{AccessToken: secret.New("access-1"), RefreshToken: secret.New("refresh-1")}
	st := store.New(r.Client, before)
	if _, err := st.ClaimGrant(ctx, "inst-1", code); err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterGrant(ctx, reg, tok, code); err != nil {
		t.Fatal(err)
	}
	if got, err := store.New(r.Client, after).ClaimGrant(ctx, "inst-1", code); err != nil || got != store.GrantAlreadyRegistered {
		t.Fatalf("ClaimGrant after the key rotation = %v, %v; want GrantAlreadyRegistered", got, err)
	}
}

// The tokens a registration refused for a DELETE kept for the same PUT
// sent again are taken once, by a registration of that instance with that
// code; one with another code, a mistaken or hostile one, or of another
// instance, neither gets them nor makes the right one lose them.
func TestKeptGrantTokensGoToTheirCodeAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	codeA, codeB := secret.New("grant-code-a-0001"), secret.New("grant-code-b-0002")
	kept := heroku.Token{AccessToken: secret.New("access-kept-0001"), RefreshToken: secret.New("refresh-kept-0001"),
		ExpiresAt: time.Date(2026, 1, 2, 11, 4, 5, 0, time.UTC)}
	if err := f.st.KeepGrantTokens(ctx, "inst-1", codeA, kept); err != nil {
		t.Fatal(err)
	}
	if dump := redistest.Dump(t, f.r); strings.Contains(dump, "access-kept") || strings.Contains(dump, "refresh-kept") ||
		!strings.Contains(dump, "rekey:grant_tokens:inst-1") {
		t.Error("the kept tokens are not in Redis, or are there in the clear")
	}
	for _, other := range []struct {
		id   string
		code secret.String
	}{{"inst-1", codeB}, {"inst-2", codeA}} {
		if _, ok, err := f.st.TakeGrantTokens(ctx, other.id, other.code); err != nil || ok {
			t.Fatalf("%s with another code or instance took the kept tokens (%v, %v)", other.id, ok, err)
		}
	}
	tok, ok, err := f.st.TakeGrantTokens(ctx, "inst-1", codeA)
	if err != nil || !ok || tok.AccessToken.Reveal() != "access-kept-0001" || tok.RefreshToken.Reveal() != "refresh-kept-0001" ||
		!tok.ExpiresAt.Equal(kept.ExpiresAt) {
		t.Fatalf("the code's own registration: %v, %v; want the kept tokens", ok, err)
	}
	if _, ok, err := f.st.TakeGrantTokens(ctx, "inst-1", codeA); err != nil || ok {
		t.Errorf("the tokens were taken twice (%v, %v)", ok, err)
	}
}
