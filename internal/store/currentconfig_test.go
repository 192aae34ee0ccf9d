package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// The credential registered at provisioning learns the fingerprint of the
// config its registration carried, once, only while it is current, and
// never that of a config rekey minted for the instance: from then on a mint
// repeating it under another id is refused, and IsCurrentConfig knows it.
// No value reaches Redis.
func TestLearnCurrentFingerprint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	const value = "postgres://u:provisioning-secret-51d0@db/1"
	provisioned := map[string]secret.String{"A_URL": secret.New(value)}
	minted := map[string]secret.String{"A_URL": secret.New("postgres://u:minted-secret-77a2@db/1")}
	if err := s.PutInstance(ctx, Registration{ID: "inst-l", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if need, err := s.NeedsCurrentFingerprint(ctx, "inst-l", "k-0"); err != nil || !need {
		t.Fatalf("NeedsCurrentFingerprint before = %v, %v; want true", need, err)
	}
	for _, tc := range []struct {
		name, cred string
		config     map[string]secret.String
		want       Learned
	}{
		{"not the current credential", "k-9", provisioned, FingerprintNotCurrent},
		{"the current credential", "k-0", provisioned, FingerprintLearned},
		{"again", "k-0", provisioned, FingerprintKnown},
		{"another config", "k-0", minted, FingerprintKnown},
	} {
		if got, err := s.LearnCurrentFingerprint(ctx, "inst-l", tc.cred, tc.config); err != nil || got != tc.want {
			t.Errorf("%s: LearnCurrentFingerprint = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if need, err := s.NeedsCurrentFingerprint(ctx, "inst-l", "k-0"); err != nil || need {
		t.Errorf("NeedsCurrentFingerprint after = %v, %v; want false", need, err)
	}
	if is, err := s.IsCurrentConfig(ctx, "inst-l", provisioned); err != nil || !is {
		t.Errorf("IsCurrentConfig(the provisioning config) = %v, %v; want true", is, err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-l", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-l", "rot-1", "k-1", provisioned); !errors.Is(err, ErrConfigReused) {
		t.Errorf("a mint of the provisioning config under a new id: %v, want ErrConfigReused", err)
	}
	keys, err := r.Client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if dump := r.Client.Dump(ctx, k).Val(); strings.Contains(dump, "provisioning-secret-51d0") {
			t.Errorf("key %s holds the provisioning config's value", k)
		}
	}

	// A config rekey minted for the instance is never taken for the
	// current credential's: k-2 is current after a rotation rekey minted,
	// a registration naming k-3 with k-2's config learns nothing.
	if err := s.PutInstance(ctx, Registration{ID: "inst-m", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-m", RotationID: "rot-m"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-m", "rot-m", "k-2", minted); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PromoteRotation(ctx, "inst-m", "rot-m", "k-2", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Minute)
	if err := s.Deprovision(ctx, "inst-m"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutInstance(ctx, Registration{ID: "inst-m", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-3"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LearnCurrentFingerprint(ctx, "inst-m", "k-3", minted); err != nil || got != FingerprintMinted {
		t.Errorf("a minted config: LearnCurrentFingerprint = %q, %v; want %q", got, err, FingerprintMinted)
	}
	if is, _ := s.IsCurrentConfig(ctx, "inst-m", minted); is {
		t.Error("IsCurrentConfig takes the config rekey minted for k-2 for the current credential k-3's")
	}

	// A config read without one of the vars gives no fingerprint, and is
	// not read again.
	if got, err := s.NoteCurrentConfigIncomplete(ctx, "inst-m", "k-3"); err != nil || got != FingerprintUnknown {
		t.Errorf("NoteCurrentConfigIncomplete = %q, %v; want %q", got, err, FingerprintUnknown)
	}
	if need, err := s.NeedsCurrentFingerprint(ctx, "inst-m", "k-3"); err != nil || need {
		t.Errorf("NeedsCurrentFingerprint after a refusal and an incomplete read = %v, %v; want false", need, err)
	}
}
