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

func TestClaimMany(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "a", "cred-0")
	f.register(t, "b", "cred-0")
	f.register(t, "gone", "")
	if err := f.st.Deprovision(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, f.st, "b", "rot-b0")
	// A flushed script cache must not fail the pipeline.
	if err := f.r.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	out := f.st.ClaimMany(ctx, []store.RotationRequest{
		{InstanceID: "a", RotationID: "rot-a"},
		{InstanceID: "b", RotationID: "rot-b1"},
		{InstanceID: "nope", RotationID: "rot-n"},
		{InstanceID: "gone", RotationID: "rot-g"},
		{InstanceID: "bad id", RotationID: "rot-x"},
	})
	tests := []struct {
		status  store.ClaimStatus
		rot     string
		wantErr error
	}{
		{store.Claimed, "rot-a", nil},
		{store.Joined, "rot-b0", nil},
		{"", "", store.ErrNotFound},
		{"", "", store.ErrDeprovisioned},
		{"", "", nil},
	}
	for i, tt := range tests {
		got := out[i]
		switch {
		case i == 4:
			if got.Err == nil {
				t.Errorf("%d: an invalid id was claimed", i)
			}
		case tt.wantErr != nil:
			if !errors.Is(got.Err, tt.wantErr) {
				t.Errorf("%d: err = %v, want %v", i, got.Err, tt.wantErr)
			}
		case got.Err != nil || got.Claim.Status != tt.status || got.Claim.RotationID != tt.rot:
			t.Errorf("%d: %+v, %v; want %s of %s", i, got.Claim.Status, got.Err, tt.status, tt.rot)
		}
	}
}

func TestTokenExpiriesAndPreviousCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "fresh", "cred-0")
	f.register(t, "unknown-expiry", "cred-0")
	f.register(t, "none", "cred-0")
	exp := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	for id, at := range map[string]time.Time{"fresh": exp, "unknown-expiry": {}} {
		tok := heroku.Token{AccessToken: secret.New("access"), RefreshToken: secret.New("refresh"), ExpiresAt: at}
		if err := f.st.SaveToken(ctx, id, tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.st.TokenExpiries(ctx, []string{"fresh", "unknown-expiry", "none", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.TokenExpiry{{HasAccess: true, ExpiresAt: exp}, {HasAccess: true}, {}, {}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}

	c := mustClaim(t, f.st, "fresh", "rot-1")
	if err := f.st.SavePending(ctx, "fresh", c.RotationID, "cred-1", map[string]secret.String{"MYADDON_URL": secret.New("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, "fresh", c.RotationID, "cred-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	counts, err := f.st.PreviousCounts(ctx, []string{"fresh", "none", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 {
		t.Errorf("previous counts = %v, want [1 0 0]", counts)
	}
}
