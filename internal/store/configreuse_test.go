package store

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
)

// A mint that answers with the config of the instance's current credential,
// or of a previous one still waiting for its revocation, under a new id is
// refused before anything is recorded (ErrConfigReused): pushing it would
// change nothing, or bring the old one back, and revoking that credential
// later would break the apps that hold its config (I1). A config of its own
// is saved as ever.
func TestSavePendingRefusesALiveConfigUnderANewID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-c", APIVersion: APIv3, ConfigVars: []string{"A_URL", "B"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	config := func(v string) map[string]secret.String {
		return map[string]secret.String{"A_URL": secret.New("postgres://u:" + v + "@db/1"), "B": secret.New("b")}
	}
	for i, v := range []string{"one", "two"} {
		rot, cred := "rot-"+v, "k-"+strconv.Itoa(i+1)
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-c", RotationID: rot}); err != nil {
			t.Fatal(err)
		}
		if err := s.SavePending(ctx, "inst-c", rot, cred, config(v)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PromoteRotation(ctx, "inst-c", rot, cred, time.Hour, ""); err != nil {
			t.Fatal(err)
		}
		*now = now.Add(time.Minute)
	}
	// k-2 is current, k-1 previous (its grace not over).
	for _, tc := range []struct {
		name string
		cfg  map[string]secret.String
		want error
	}{
		{"the current config", config("two"), ErrConfigReused},
		{"a previous config", config("one"), ErrConfigReused},
		{"a config of its own", config("three"), nil},
	} {
		rot := "rot-" + strings.ReplaceAll(tc.name, " ", "-")
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-c", RotationID: rot}); err != nil {
			t.Fatal(err)
		}
		err := s.SavePending(ctx, "inst-c", rot, "k-"+rot, tc.cfg)
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s: SavePending = %v, want %v", tc.name, err, tc.want)
		}
		if _, cerr := s.Credential(ctx, "inst-c", "k-"+rot); (cerr == nil) != (tc.want == nil) {
			t.Errorf("%s: credential recorded: %v", tc.name, cerr)
		}
		if tc.want != nil {
			if _, err := s.Fail(ctx, "inst-c", rot, "mint:config_reused", "refused"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A second credential for a rotation that has one is discarded and
	// revoked, unless its config is a live one: revoking it could revoke
	// that config, so nothing is recorded.
	if err := s.SavePending(ctx, "inst-c", "rot-a-config-of-its-own", "k-second", config("two")); !errors.Is(err, ErrConfigReused) {
		t.Errorf("a second credential with the current config: %v, want ErrConfigReused", err)
	}
	if _, err := s.Credential(ctx, "inst-c", "k-second"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a second credential with the current config was recorded: %v", err)
	}
}

// A credential minted with no usable config is recorded as discarded and
// due for revocation now, once however often the run repeats; an id the
// instance already uses records nothing and says so.
func TestDiscardMintedRecordsItOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, _ := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-d", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-d", RotationID: "rot-d"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.DiscardMinted(ctx, "inst-d", "rot-d", "k-1", "no config", nil); err != nil {
			t.Fatalf("DiscardMinted: %v", err)
		}
	}
	c, err := s.Credential(ctx, "inst-d", "k-1")
	if err != nil || c.State != CredentialDiscarded {
		t.Fatalf("credential k-1 %+v (%v), want discarded", c, err)
	}
	if due := r.Client.ZScore(ctx, revokeDueKey(), "inst-d/k-1").Val(); due == 0 {
		t.Error("k-1 is not due for revocation")
	}
	if err := s.DiscardMinted(ctx, "inst-d", "rot-d", "k-0", "no config", nil); !errors.Is(err, ErrCredentialReused) {
		t.Errorf("DiscardMinted of the current credential's id = %v, want ErrCredentialReused", err)
	}
	if cur, _ := s.Credential(ctx, "inst-d", "k-0"); cur.State != CredentialCurrent {
		t.Errorf("the current credential is %q after a discard named it", cur.State)
	}
	if err := s.DiscardMinted(ctx, "inst-d", "rot-d", "..", "no config", nil); !errors.Is(err, ErrInvalidCredentialID) {
		t.Errorf("DiscardMinted of %q = %v, want ErrInvalidCredentialID", "..", err)
	}
}

func reuseConfig(v string) map[string]secret.String {
	return map[string]secret.String{"A_URL": secret.New("postgres://u:" + v + "@db/1")}
}

// Two runs of one rotation at once (I6) may both mint: a second credential
// whose config is the rotation's own pending one is not recorded as
// discarded, since revoking it could revoke the config being pushed.
func TestSecondCredentialWithThePendingConfigIsNotRevoked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, _ := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-p", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-p", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-p", "rot-1", "k-a", reuseConfig("X")); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-p", "rot-1", "k-b", reuseConfig("X")); !errors.Is(err, ErrConfigReused) {
		t.Errorf("SavePending(k-b, k-a's config) = %v, want ErrConfigReused", err)
	}
	if due := r.Client.ZScore(ctx, revokeDueKey(), "inst-p/k-b").Val(); due != 0 {
		t.Errorf("k-b, whose config is the one being pushed, is due for revocation at %v", fromMSInt(int64(due)))
	}
}

// An unconfirmed credential (a push of it went unanswered: Heroku may hold
// its config) counts as live: a mint answering with its config under a new
// id is refused, or the next promotion would make it previous and revoke it.
func TestUnconfirmedConfigUnderANewIDIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-u", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-u", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-u", "rot-1", "k-a", reuseConfig("X")); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPushAttempt(ctx, "rot-1", pushTargetOf(t, s, "inst-u")); err != nil {
		t.Fatal(err)
	}
	if err := s.SettlePush(ctx, "rot-1", 1); err != nil {
		t.Fatal(err)
	}
	f, err := s.FailRotation(ctx, "inst-u", "rot-1", Failure{Code: "push:error", Cause: "timeout"})
	if err != nil || f.Unconfirmed != "k-a" {
		t.Fatalf("FailRotation = %+v, %v; want k-a unconfirmed", f, err)
	}
	*now = now.Add(time.Minute)
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-u", RotationID: "rot-2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-u", "rot-2", "k-b", reuseConfig("X")); !errors.Is(err, ErrConfigReused) {
		t.Errorf("SavePending(k-b, unconfirmed k-a's config) = %v, want ErrConfigReused", err)
	}
}

// Retiring a key as README.md says leaves every fingerprint comparable: a
// credential's config is still refused under a new id with a new first
// key and the old one after it, and once reseal ran and the old key was
// dropped. Fingerprints are keyed with the fingerprint key, which reseal
// moves to the new key like any sealed value; keyed with the encryption
// keys, as they were before it, dropping the old key let the current
// config through under a new id.
func TestConfigReuseIsSeenAcrossAKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-k", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if err := rotateWith(t, s, "inst-k", "rot-1", "k-1", "X"); err != nil {
		t.Fatal(err)
	}
	storeWith := func(keys ...byte) *Store { return storeWithKeys(t, r, *now, keys...) }
	// newHistoryStore's key is bytes of 5; the new first key is bytes of 6.
	rotated, dropped := storeWith(6, 5), storeWith(6)
	for i, step := range []struct {
		name string
		st   *Store
	}{{"with a new first key", rotated}, {"with the old key dropped after the reseal", dropped}} {
		if i == 1 {
			if res, err := rotated.Reseal(ctx, nil); err != nil || res.Unreadable != 0 || res.Resealed == 0 {
				t.Fatalf("Reseal = %+v, %v", res, err)
			}
		}
		rot := "rot-" + strconv.Itoa(i+2)
		if _, err := step.st.Claim(ctx, RotationRequest{InstanceID: "inst-k", RotationID: rot}); err != nil {
			t.Fatal(err)
		}
		if err := step.st.SavePending(ctx, "inst-k", rot, "k-x"+rot, reuseConfig("X")); !errors.Is(err, ErrConfigReused) {
			t.Errorf("%s, SavePending(the current config) = %v, want ErrConfigReused", step.name, err)
		}
		if err := step.st.SavePending(ctx, "inst-k", rot, "k-y"+rot, reuseConfig("Y"+rot)); err != nil {
			t.Errorf("%s, SavePending(a config of its own) = %v", step.name, err)
		}
		if _, err := step.st.Fail(ctx, "inst-k", rot, "test", "done"); err != nil {
			t.Fatal(err)
		}
	}
}

// Two runs of one rotation mint at once and the issuer answers both with
// one id: the second to save it may go on (its push sends the same config)
// only if its config is the one saved; another config under that id is
// ErrReminted, so that neither is pushed.
func TestSavePendingAgainWithAnotherConfigIsReminted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-r", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-r", RotationID: "rot-r"}); err != nil {
		t.Fatal(err)
	}
	config := func(v string) map[string]secret.String { return map[string]secret.String{"A_URL": secret.New(v)} }
	if err := s.SavePending(ctx, "inst-r", "rot-r", "k-1", config("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-r", "rot-r", "k-1", config("first")); err != nil {
		t.Errorf("the same credential and config saved again: %v, want nil", err)
	}
	if err := s.SavePending(ctx, "inst-r", "rot-r", "k-1", config("second")); !errors.Is(err, ErrReminted) || errors.Is(err, ErrConflict) {
		t.Errorf("the same credential with another config: %v, want ErrReminted", err)
	}
	got, err := s.PendingConfig(ctx, "inst-r", "k-1")
	if err != nil || got["A_URL"].Reveal() != "first" {
		t.Errorf("pending config after the conflict: %v; want the first one kept", err)
	}
}

// An issuer that names a credential by its secret would put the secret in
// key names, task payloads, logs and the history: such an id is refused
// like any unusable one, and nothing is recorded under it (I5).
func TestSavePendingRefusesAnIDHoldingItsSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, _ := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-s", APIVersion: APIv3, ConfigVars: []string{"A_URL", "A_TOKEN"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	config := map[string]secret.String{
		"A_URL":   secret.New("postgres://u_k:Pw5d8f7c9b4@db.example/app"),
		"A_TOKEN": secret.New("tok_9f8e7d6c5b4a39281706"),
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-s", RotationID: "rot-s"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"Pw5d8f7c9b4", "k-tok_9f8e7d6c5b4a39281706"} {
		err := s.SavePending(ctx, "inst-s", "rot-s", id, config)
		if !errors.Is(err, ErrInvalidCredentialID) || strings.Contains(err.Error(), id) {
			t.Errorf("SavePending(%q) = %v; want ErrInvalidCredentialID, without the id", id, err)
		}
		// A config rekey cannot use still holds the secrets the id must not.
		err = s.DiscardMinted(ctx, "inst-s", "rot-s", id, "no usable config", slices.Collect(maps.Values(config)))
		if !errors.Is(err, ErrInvalidCredentialID) || strings.Contains(err.Error(), id) {
			t.Errorf("DiscardMinted(%q) = %v; want ErrInvalidCredentialID, without the id", id, err)
		}
		if _, err := s.Credential(ctx, "inst-s", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("credential %q recorded: %v", id, err)
		}
		if dump := redistest.Dump(t, r); strings.Contains(dump, id) {
			t.Errorf("%q found in Redis", id)
		}
	}
	// Names and values swapped: the name is the secret.
	swapped := map[string]secret.String{"postgres://u_k:Sw4pPw9x7@db.example/app": secret.New("A_URL")}
	if err := s.SavePending(ctx, "inst-s", "rot-s", "k-Sw4pPw9x7", swapped); !errors.Is(err, ErrInvalidCredentialID) {
		t.Errorf("SavePending of an id holding the password of a URL given as a name = %v; want ErrInvalidCredentialID", err)
	}
	// The URL's user is no secret: an id that holds it is saved.
	if err := s.SavePending(ctx, "inst-s", "rot-s", "u_k-2", config); err != nil {
		t.Errorf("SavePending(u_k-2) = %v", err)
	}
}

// A credential revoked or discarded since its mint is no longer live, but
// its config must not come back under another id either: the apps would
// get a secret that no longer works. Every config minted for the instance
// is remembered for the rotation ttl (mintedKey), whatever became of its
// credential; after that, a mint with it is saved as any other.
func TestSavePendingRefusesARevokedOrDiscardedConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-r", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	// k-1 is minted, promoted, superseded by k-2 and revoked.
	rotateOnce(t, s, now, "inst-r", "rot-1", "k-1")
	rotateOnce(t, s, now, "inst-r", "rot-2", "k-2")
	if c, err := s.Credential(ctx, "inst-r", "k-1"); err != nil || !c.Revoked() {
		t.Fatalf("k-1 = %+v (%v), want revoked", c, err)
	}
	// k-3 is minted and discarded: its rotation failed before any push.
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-r", RotationID: "rot-3"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-r", "rot-3", "k-3", reuseConfig("three")); err != nil {
		t.Fatal(err)
	}
	if f, err := s.FailRotation(ctx, "inst-r", "rot-3", Failure{Code: "push:forbidden", Cause: "403"}); err != nil || f.Discarded == nil || f.Discarded.CredentialID != "k-3" {
		t.Fatalf("FailRotation = %+v, %v; want k-3 discarded", f, err)
	}
	if err := s.MarkRevoked(ctx, "inst-r", "k-3"); err != nil {
		t.Fatal(err)
	}

	mint := func(rot, cred string, cfg map[string]secret.String) error {
		t.Helper()
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-r", RotationID: rot}); err != nil {
			t.Fatal(err)
		}
		err := s.SavePending(ctx, "inst-r", rot, cred, cfg)
		// Ended either way, so that the next claim starts a rotation of its own.
		if _, ferr := s.FailRotation(ctx, "inst-r", rot, Failure{Code: "mint:config_reused", Cause: "refused"}); ferr != nil {
			t.Fatal(ferr)
		}
		return err
	}
	for _, tc := range []struct{ config, was string }{{"pw-rot-1", "k-1"}, {"three", "k-3"}} {
		// rotateOnce mints with reuseConfig("pw-" + rot).
		err := mint("rot-again-"+tc.was, "k-new-"+tc.was, reuseConfig(tc.config))
		if !errors.Is(err, ErrConfigReused) || !strings.Contains(err.Error(), tc.was) {
			t.Errorf("a mint with %s's config = %v, want ErrConfigReused naming %s", tc.was, err, tc.was)
		}
		if _, err := s.Credential(ctx, "inst-r", "k-new-"+tc.was); !errors.Is(err, ErrNotFound) {
			t.Errorf("the credential minted with %s's config was recorded: %v", tc.was, err)
		}
	}
	if err := mint("rot-4", "k-4", reuseConfig("four")); err != nil {
		t.Errorf("a config of its own: %v", err)
	}
	if ttl := r.Client.TTL(ctx, mintedKey("inst-r")).Val(); ttl <= 0 || ttl > 30*24*time.Hour {
		t.Errorf("the minted configs' key expires in %v, want within the rotation ttl", ttl)
	}

	// Past the rotation ttl the configs are forgotten, as their records are.
	*now = now.Add(31 * 24 * time.Hour)
	if err := mint("rot-5", "k-5", reuseConfig("three")); err != nil {
		t.Errorf("k-3's config 31 days on: %v, want it saved", err)
	}
	if n := r.Client.ZCard(ctx, mintedKey("inst-r")).Val(); n != 1 {
		t.Errorf("%d configs remembered after 31 days and one mint, want 1", n)
	}
}

// A credential is usually current for a rotation period (90 days), longer
// than the rotation ttl, before it is superseded and revoked: its config
// is remembered again at its revocation, so a mint repeating it under a
// new id right after is refused all the same.
func TestSavePendingRefusesTheConfigOfALongLivedCredentialJustRevoked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-l", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	rotateOnce(t, s, now, "inst-l", "rot-1", "k-1")
	*now = now.Add(90 * 24 * time.Hour)
	rotateOnce(t, s, now, "inst-l", "rot-2", "k-2") // k-1 superseded and revoked
	if c, err := s.Credential(ctx, "inst-l", "k-1"); err != nil || !c.Revoked() {
		t.Fatalf("k-1 = %+v (%v), want revoked", c, err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-l", RotationID: "rot-3"}); err != nil {
		t.Fatal(err)
	}
	err := s.SavePending(ctx, "inst-l", "rot-3", "k-new", reuseConfig("pw-rot-1"))
	if !errors.Is(err, ErrConfigReused) || !strings.Contains(err.Error(), "k-1") {
		t.Errorf("a mint with k-1's config, k-1 revoked after 90 days current: %v, want ErrConfigReused naming k-1", err)
	}
}

// A credential fingerprinted by a version before the fingerprint key (its
// "f" keyed with the first encryption key's fingerprint key) still counts,
// and keeps counting once that encryption key is retired: the fingerprint
// key carries it, sealed, through the reseal. A fingerprint key replaced
// meanwhile (deleted, created anew by another process) is read again
// within fingerprintKeyRecheck. And a fingerprint key no configured key
// opens fails the save (ErrFingerprintKey) rather than letting the config
// through unchecked.
func TestEarlierFingerprintsAndTheFingerprintKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-e", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	rotate := func(st *Store, rot, cred, v string) error { return rotateWith(t, st, "inst-e", rot, cred, v) }
	if err := rotate(s, "rot-1", "k-1", "Y"); err != nil {
		t.Fatal(err)
	}
	// k-1 (config Y) is current. As an earlier version would have, key
	// its fingerprint with the encryption key's fingerprint key, and
	// forget what was minted.
	_, all, err := s.configFingerprints(ctx, reuseConfig("Y"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client.HSet(ctx, credentialKey("inst-e", "k-1"), "f", all[configFingerprintLen:2*configFingerprintLen]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Del(ctx, mintedKey("inst-e")).Err(); err != nil {
		t.Fatal(err)
	}
	storeWith := func(keys ...byte) *Store { return storeWithKeys(t, r, *now, keys...) }
	// newHistoryStore's key is bytes of 5: retire it for bytes of 6.
	if res, err := storeWith(6, 5).Reseal(ctx, nil); err != nil || res.Unreadable != 0 {
		t.Fatalf("Reseal = %+v, %v", res, err)
	}
	dropped := storeWith(6)
	if err := rotate(dropped, "rot-2", "k-2", "Y"); !errors.Is(err, ErrConfigReused) {
		t.Errorf("an earlier version's fingerprint, its key retired: SavePending(the current config) = %v, want ErrConfigReused", err)
	}

	// The fingerprint key is lost and created anew by another process:
	// fingerprints taken since under the new one are seen by this one
	// once it reads the key again.
	if err := r.Client.Del(ctx, fingerprintKeyKey()).Err(); err != nil {
		t.Fatal(err)
	}
	other := storeWith(6)
	if err := rotate(other, "rot-3", "k-3", "Z"); err != nil {
		t.Fatal(err)
	}
	dropped.fpMu.Lock()
	dropped.fpKeys.readAt = time.Time{} // fingerprintKeyRecheck has passed
	dropped.fpMu.Unlock()
	if err := rotate(dropped, "rot-4", "k-4", "Z"); !errors.Is(err, ErrConfigReused) {
		t.Errorf("after the fingerprint key was replaced: SavePending(the current config) = %v, want ErrConfigReused", err)
	}

	// The fingerprint key sealed under a key no store here holds.
	if err := r.Client.Set(ctx, fingerprintKeyKey(), "not a sealed value", 0).Err(); err != nil {
		t.Fatal(err)
	}
	blind := storeWith(6)
	if err := blind.CheckFingerprintKey(ctx); !errors.Is(err, ErrFingerprintKey) || !errors.Is(err, ErrUnreadable) {
		t.Fatalf("CheckFingerprintKey = %v, want ErrFingerprintKey", err)
	}
	if err := rotate(blind, "rot-5", "k-5", "W"); !errors.Is(err, ErrFingerprintKey) {
		t.Errorf("without the fingerprint key, SavePending(a config of its own) = %v, want ErrFingerprintKey", err)
	}
}

// storeWithKeys is a store over r whose REKEY_ENCRYPTION_KEYS are keys
// bytes repeated, the first sealing, its clock at now.
func storeWithKeys(t *testing.T, r *redistest.Redis, now time.Time, keys ...byte) *Store {
	t.Helper()
	var ks [][]byte
	for _, k := range keys {
		ks = append(ks, bytes.Repeat([]byte{k}, seal.KeySize))
	}
	sealer, err := seal.New(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return New(r.Client, sealer, WithClock(func() time.Time { return now }))
}

// rotateWith runs rotation rot of inst to cred with config reuseConfig(v)
// through st; a mint the store refuses fails the rotation, and its error
// is returned.
func rotateWith(t *testing.T, st *Store, inst, rot, cred, v string) error {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Claim(ctx, RotationRequest{InstanceID: inst, RotationID: rot}); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePending(ctx, inst, rot, cred, reuseConfig(v)); err != nil {
		if _, ferr := st.Fail(ctx, inst, rot, "test", "refused"); ferr != nil {
			t.Fatal(ferr)
		}
		return err
	}
	_, err := st.PromoteRotation(ctx, inst, rot, cred, time.Hour, "")
	return err
}

// pushTargetOf is the registration a run that claimed a rotation of id now
// would push under.
func pushTargetOf(t testing.TB, s *Store, id string) PushTarget {
	t.Helper()
	in, err := s.Instance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in.Target()
}

// An id that differs from another credential of the instance only in case
// names that credential at an issuer whose ids ignore case: a discarded
// one still waiting for its revocation, or the current one. Recorded as a
// credential of its own, the revocation of either would revoke the other.
// It is refused as reused, whether saved or discarded, and nothing is
// recorded under it.
func TestAnIdInAnotherCaseOfTheInstancesCredentialIsReused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-f", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-cur"}); err != nil {
		t.Fatal(err)
	}
	// k-gone: minted, never pushed, discarded when its rotation failed.
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-f", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-f", "rot-1", "k-gone", reuseConfig("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fail(ctx, "inst-f", "rot-1", "verify:refused", "refused"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Credential(ctx, "inst-f", "k-gone"); err != nil || c.State != CredentialDiscarded {
		t.Fatalf("k-gone %+v (%v), want it discarded", c, err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-f", RotationID: "rot-2"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"K-GONE", "K-Cur"} {
		if err := s.SavePending(ctx, "inst-f", "rot-2", id, reuseConfig(id)); !errors.Is(err, ErrCredentialReused) {
			t.Errorf("SavePending of %s = %v, want ErrCredentialReused", id, err)
		}
		if _, err := s.Credential(ctx, "inst-f", id); err == nil {
			t.Errorf("%s is recorded", id)
		}
	}
	if err := s.DiscardMinted(ctx, "inst-f", "rot-2", "K-CUR", "no config", nil); !errors.Is(err, ErrCredentialReused) {
		t.Errorf("DiscardMinted of K-CUR = %v, want ErrCredentialReused", err)
	}
	if c, err := s.Credential(ctx, "inst-f", "k-cur"); err != nil || c.State != CredentialCurrent {
		t.Errorf("k-cur %+v (%v), want it current", c, err)
	}
	if err := s.SavePending(ctx, "inst-f", "rot-2", "k-2", reuseConfig("two")); err != nil {
		t.Errorf("SavePending of an id of its own = %v", err)
	}
}
