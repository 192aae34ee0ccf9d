package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// A credential that reaches rekey too late for its rotation (a second
// credential answered to one rotation, or one minted after the rotation
// failed) is recorded as discarded and joins the fleet's index of live
// configs. Once the issuer revokes it, its config must leave the index, as
// a previous credential's does: otherwise it stays there for good, refusing
// any later mint of that config fleet-wide and growing the index with every
// late credential.
func TestRevokingALateDiscardedCredentialTakesItsConfigOutOfTheLiveIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, now := newHistoryStore(t)
	config := func(v string) map[string]secret.String {
		return map[string]secret.String{"A_URL": secret.New("postgres://u:" + v + "@db/1")}
	}
	for _, id := range []string{"inst-a", "inst-b"} {
		if err := s.PutInstance(ctx, Registration{ID: id, APIVersion: APIv3, ConfigVars: []string{"A_URL"},
			CurrentCredentialID: id + "-0"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, i string
		late    func(t *testing.T) // records "a-late-<i>", config "late-<i>", as discarded
	}{
		{"second credential for one rotation", "1", func(t *testing.T) {
			if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-a", RotationID: "rot-a1"}); err != nil {
				t.Fatal(err)
			}
			if err := s.SavePending(ctx, "inst-a", "rot-a1", "a-1", config("a-one")); err != nil {
				t.Fatal(err)
			}
			if err := s.SavePending(ctx, "inst-a", "rot-a1", "a-late-1", config("late-1")); !errors.Is(err, ErrConflict) {
				t.Fatalf("second credential: %v, want ErrConflict", err)
			}
			if _, err := s.PromoteRotation(ctx, "inst-a", "rot-a1", "a-1", time.Hour, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"credential minted after its rotation failed", "2", func(t *testing.T) {
			if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-a", RotationID: "rot-a2"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Fail(ctx, "inst-a", "rot-a2", "mint:timeout", "the issuer did not answer in time"); err != nil {
				t.Fatal(err)
			}
			if err := s.SavePending(ctx, "inst-a", "rot-a2", "a-late-2", config("late-2")); !errors.Is(err, ErrConflict) {
				t.Fatalf("credential after the failure: %v, want ErrConflict", err)
			}
		}},
	} {
		i := tc.i
		tc.late(t)
		*now = now.Add(time.Minute)
		if c, err := s.Credential(ctx, "inst-a", "a-late-"+i); err != nil || c.State != CredentialDiscarded {
			t.Fatalf("%s: late credential %+v, %v; want discarded", tc.name, c, err)
		}
		if err := s.MarkRevoked(ctx, "inst-a", "a-late-"+i); err != nil {
			t.Fatal(err)
		}
		*now = now.Add(time.Minute)
		rot := "rot-b" + i
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-b", RotationID: rot}); err != nil {
			t.Fatal(err)
		}
		if err := s.SavePending(ctx, "inst-b", rot, "b-"+i, config("late-"+i)); err != nil {
			t.Errorf("%s: a mint for inst-b answering the revoked late credential's config: %v; "+
				"it is nobody's live config any more", tc.name, err)
		}
		if _, err := s.Fail(ctx, "inst-b", rot, "test", "end"); err != nil {
			t.Fatal(err)
		}
	}
}
