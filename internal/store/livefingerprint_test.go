package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// The current credential's config under a new id is refused whether the
// instance's minted set still remembers it (a credential minted within the
// rotation ttl, compared from that set) or no longer does (one current for
// longer than the ttl, whose fingerprint is read from its record): pushed,
// it would change nothing, and revoking the current credential after the
// grace would break the apps (I1).
func TestTheCurrentConfigIsRefusedWithinAndPastTheMintedSetsTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		after time.Duration
	}{
		{"within the ttl", time.Hour},
		{"past the ttl", 31 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, _, now := newHistoryStore(t)
			if err := s.PutInstance(ctx, Registration{ID: "inst-l", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
				CurrentCredentialID: "k-0"}); err != nil {
				t.Fatal(err)
			}
			cfg := map[string]secret.String{"A_URL": secret.New("postgres://u:one@db/1")}
			if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-l", RotationID: "rot-1"}); err != nil {
				t.Fatal(err)
			}
			if err := s.SavePending(ctx, "inst-l", "rot-1", "k-1", cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PromoteRotation(ctx, "inst-l", "rot-1", "k-1", time.Hour, ""); err != nil {
				t.Fatal(err)
			}
			*now = now.Add(tc.after)
			if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-l", RotationID: "rot-2"}); err != nil {
				t.Fatal(err)
			}
			if err := s.SavePending(ctx, "inst-l", "rot-2", "k-2", cfg); !errors.Is(err, ErrConfigReused) {
				t.Fatalf("SavePending with the current config under a new id = %v, want ErrConfigReused", err)
			}
			if err := s.SavePending(ctx, "inst-l", "rot-2", "k-3",
				map[string]secret.String{"A_URL": secret.New("postgres://u:two@db/1")}); err != nil {
				t.Fatalf("SavePending with a config of its own = %v", err)
			}
		})
	}
}
