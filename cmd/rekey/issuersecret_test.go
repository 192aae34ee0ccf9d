package main

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// The worker's issuer signs with REKEY_ISSUER_SECRET_PREVIOUS too: an
// issuer still holding the old secret takes its mint and revoke over
// real HTTP while the worker already holds the new one.
func TestTheWorkersIssuerSignsWithThePreviousSecretToo(t *testing.T) {
	const oldSecret, newSecret = "old-issuer-secret-3c9e5a7f", "new-issuer-secret-8b1d6f2a"
	d := issuer.NewDemo()
	srv := httptest.NewServer(issuer.NewDemoServer(d, secret.New(oldSecret)))
	t.Cleanup(srv.Close)
	vars := map[string]string{"REKEY_ISSUER_URL": srv.URL, "REKEY_ISSUER_SECRET": newSecret,
		"REKEY_ISSUER_SECRET_PREVIOUS": oldSecret, "REKEY_ISSUER_VERIFY": "optional"}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	iss, err := (&app{cfg: cfg}).issuer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cred, err := iss.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint at the old-secret issuer: %v", err)
	}
	if err := iss.Revoke(ctx, "inst-1", cred.ID); err != nil {
		t.Fatalf("revoke at the old-secret issuer: %v", err)
	}
	if st := d.Stats(); st.Minted != 1 || st.Revoked != 1 {
		t.Errorf("issuer stats = %+v, want one credential minted and revoked", st)
	}
}

// rekey dev runs its own issuer, so it says it ignores a
// REKEY_ISSUER_SECRET_PREVIOUS of the environment, as it does
// REKEY_ISSUER_SECRET.
func TestDevIgnoresThePreviousIssuerSecret(t *testing.T) {
	got := devIgnored([]string{"REKEY_ISSUER_SECRET", "REKEY_ISSUER_SECRET_PREVIOUS"})
	want := []string{"REKEY_ISSUER_SECRET (dev runs its own issuer)", "REKEY_ISSUER_SECRET_PREVIOUS (dev runs its own issuer)"}
	if !slices.Equal(got, want) {
		t.Errorf("devIgnored = %q, want %q", got, want)
	}
}
