package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// An issuer that mixed its tenants up answers one instance's mint with the
// config of another instance's live credential, under a new id. It is
// refused before anything is recorded (ErrConfigLiveElsewhere): pushing it
// would hand that instance's secret to this one's apps, and revoking it
// would break that instance's. A credential is live from its mint, or from
// the registration that learned its config, until its revocation; after
// that its config is no other instance's concern. The index keeps only
// integers, and its sets stay intsets.
func TestSavePendingRefusesAnotherInstancesLiveConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, now := newHistoryStore(t)
	config := func(v string) map[string]secret.String {
		return map[string]secret.String{"A_URL": secret.New("postgres://u:" + v + "@db/1")}
	}
	for _, id := range []string{"inst-a", "inst-b", "inst-c"} {
		if err := s.PutInstance(ctx, Registration{ID: id, APIVersion: APIv3, ConfigVars: []string{"A_URL"},
			CurrentCredentialID: id + "-0"}); err != nil {
			t.Fatal(err)
		}
	}
	// inst-c's current config is learned, as a registration's current_config is.
	if got, err := s.LearnCurrentFingerprint(ctx, "inst-c", "inst-c-0", config("c-registered")); err != nil || got != FingerprintLearned {
		t.Fatalf("learn inst-c's current config: %v, %v", got, err)
	}
	rotate := func(inst, rot, cred, v string) error {
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: inst, RotationID: rot}); err != nil {
			t.Fatal(err)
		}
		err := s.SavePending(ctx, inst, rot, cred, config(v))
		if err == nil {
			_, err = s.PromoteRotation(ctx, inst, rot, cred, time.Hour, "")
		} else if _, ferr := s.Fail(ctx, inst, rot, "mint:refused", "refused"); ferr != nil {
			t.Fatal(ferr)
		}
		*now = now.Add(time.Minute)
		return err
	}
	if err := rotate("inst-a", "rot-a1", "a-1", "a-one"); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ name, v string }{
		{"inst-a's current config", "a-one"},
		{"inst-c's registered config", "c-registered"},
	} {
		cred := "b-" + string(rune('1'+i))
		if err := rotate("inst-b", "rot-"+cred, cred, tc.v); !errors.Is(err, ErrConfigLiveElsewhere) {
			t.Errorf("%s answered to inst-b: %v, want ErrConfigLiveElsewhere", tc.name, err)
		}
		if _, err := s.Credential(ctx, "inst-b", cred); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: inst-b's credential recorded (%v): revoking it would break another instance's apps", tc.name, err)
		}
	}
	// inst-a rotates again: a-1 is previous, then revoked; its config is
	// nobody's live one any more.
	if err := rotate("inst-a", "rot-a2", "a-2", "a-two"); err != nil {
		t.Fatal(err)
	}
	if err := rotate("inst-b", "rot-b-early", "b-early", "a-one"); !errors.Is(err, ErrConfigLiveElsewhere) {
		t.Errorf("inst-a's previous config, its grace not over: %v, want ErrConfigLiveElsewhere", err)
	}
	if err := s.MarkRevoked(ctx, "inst-a", "a-1"); err != nil {
		t.Fatal(err)
	}
	if err := rotate("inst-b", "rot-b-late", "b-late", "a-one"); err != nil {
		t.Errorf("inst-a's config after its revocation: %v, want it saved", err)
	}
	keys, err := s.rdb.Keys(ctx, livePrefix()+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("live index keys %v, %v", keys, err)
	}
	for _, k := range keys {
		if enc := s.rdb.ObjectEncoding(ctx, k).Val(); enc != "intset" {
			t.Errorf("%s is a %s, want an intset", k, enc)
		}
	}
}

// Two instances registered with one current config (the partner provisioned
// the second with the first's credential, before rekey): the second's is
// not learned (FingerprintLiveElsewhere), so the index keeps the first's
// entry alone, and the second's credential, superseded and revoked, does
// not take out the config the first instance's apps still run on.
func TestAConfigLiveElsewhereIsNotLearnedTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newHistoryStore(t)
	shared := map[string]secret.String{"A_URL": secret.New("postgres://u:shared-secret-1@db/1")}
	for _, id := range []string{"inst-a", "inst-b"} {
		if err := s.PutInstance(ctx, Registration{ID: id, APIVersion: APIv3, ConfigVars: []string{"A_URL"},
			CurrentCredentialID: id + "-0"}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.LearnCurrentFingerprint(ctx, "inst-a", "inst-a-0", shared); err != nil || got != FingerprintLearned {
		t.Fatalf("inst-a learns its config: %v, %v", got, err)
	}
	if got, err := s.LearnCurrentFingerprint(ctx, "inst-b", "inst-b-0", shared); err != nil || got != FingerprintLiveElsewhere {
		t.Fatalf("inst-b given inst-a's live config: %v, %v; want %s", got, err, FingerprintLiveElsewhere)
	}
	// inst-b rotates, and its old credential is revoked.
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-b", RotationID: "rot-b"}); err != nil {
		t.Fatal(err)
	}
	own := map[string]secret.String{"A_URL": secret.New("postgres://u:b-own-1@db/1")}
	if err := s.SavePending(ctx, "inst-b", "rot-b", "inst-b-1", own); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PromoteRotation(ctx, "inst-b", "rot-b", "inst-b-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRevoked(ctx, "inst-b", "inst-b-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-c", RotationID: "rot-c"}); err == nil {
		t.Fatal("claim for an unregistered instance succeeded")
	}
	if err := s.PutInstance(ctx, Registration{ID: "inst-c", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "inst-c-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-c", RotationID: "rot-c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-c", "rot-c", "inst-c-1", shared); !errors.Is(err, ErrConfigLiveElsewhere) {
		t.Errorf("inst-a's live config minted for inst-c after inst-b's revocation: %v, want ErrConfigLiveElsewhere", err)
	}
}
