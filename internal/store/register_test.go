package store_test

import (
	"context"
	"errors"
	"strings"
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

// Ids are 1 to 128 characters of a set safe in keys, URLs and logs, and
// not dots alone, which a URL's path reads as its current or parent segment.
func TestValidID(t *testing.T) {
	t.Parallel()
	valid := []string{"cred_1", "8b1a9953-c461-4a3d-8f5e-1c7a42d0b6a1", "a.b@c", ".a", "a..", strings.Repeat("x", 128)}
	invalid := []string{"", ".", "..", "...", strings.Repeat("x", 129), "a/b", "a b", "a\nb", "a:b", "é"}
	for _, id := range valid {
		if !store.ValidID(id) {
			t.Errorf("ValidID(%q) = false, want true", id)
		}
	}
	for _, id := range invalid {
		if store.ValidID(id) {
			t.Errorf("ValidID(%q) = true, want false", id)
		}
	}
}

// A registration that began before a DELETE of its instance is refused; one
// that began after it, or whose DELETE mark expired meanwhile (a day after
// the last DELETE, so none came since), is not.
func TestARegistrationBeforeADeleteIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := v1Registration("cred-0")
	mark := func() store.DeleteMark {
		m, err := f.st.DeleteMark(ctx, "inst-1")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	reg.Deletes = mark()
	if err := f.st.Deprovision(ctx, "inst-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DELETE of an instance not registered yet: %v, want ErrNotFound", err)
	}
	if err := f.st.PutInstance(ctx, reg); !errors.Is(err, store.ErrDeletedSince) {
		t.Fatalf("registration begun before the DELETE: %v, want ErrDeletedSince", err)
	}
	if _, err := f.st.Instance(ctx, "inst-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused registration stored the instance (%v)", err)
	}
	reg.Deletes = mark()
	if err := f.st.PutInstance(ctx, reg); err != nil {
		t.Fatalf("registration begun after the DELETE: %v", err)
	}
	reg.Deletes = mark()
	if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Register(ctx, reg, nil); !errors.Is(err, store.ErrDeletedSince) {
		t.Fatalf("registration again begun before a second DELETE: %v, want ErrDeletedSince", err)
	}
	reg.Deletes = mark()
	f.r.Client.Del(ctx, "rekey:deletes:inst-1") // the mark expires
	if err := f.st.Register(ctx, reg, nil); err != nil {
		t.Fatalf("registration whose DELETE mark expired meanwhile: %v", err)
	}
	if err := f.st.PutInstance(ctx, v1Registration("")); err != nil {
		t.Fatalf("a registration that reads no count (the zero DeleteMark): %v", err)
	}
}

// An instance deprovisioned with nothing waiting gets the audit retention
// as the expiry of its keys, its current credential's record with them.
// Registered again naming another credential, it keeps the one current
// before as unconfirmed, whose record must then stay: expired, it would be
// dropped from the unconfirmed set unrevoked, while the app may hold it.
func TestTheCredentialKeptAtARegistrationAgainOutlivesTheRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := v1Registration("c0")
	if err := f.st.PutInstance(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if expiring, err := f.st.ExpireRetired(ctx, "inst-1"); err != nil || !expiring {
		t.Fatalf("ExpireRetired = %v, %v; want the instance's keys given their expiry", expiring, err)
	}
	if ttl := f.r.Client.TTL(ctx, "rekey:cred:inst-1:c0").Val(); ttl <= 0 {
		t.Fatalf("c0's record has no expiry (%v) after ExpireRetired", ttl)
	}
	reg.CurrentCredentialID = "c9"
	if err := f.st.PutInstance(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if c, err := f.st.Credential(ctx, "inst-1", "c0"); err != nil || c.State != store.CredentialUnconfirmed {
		t.Fatalf("c0 after the registration again: %+v, %v; want unconfirmed", c, err)
	}
	for _, k := range []string{"rekey:cred:inst-1:c0", "rekey:instance:inst-1"} {
		if ttl := f.r.Client.TTL(ctx, k).Val(); ttl != -1 {
			t.Errorf("%s expires in %v after the registration again, want no expiry", k, ttl)
		}
	}
}

// v1Registration is a V1 registration of inst-1 (no tokens needed) naming
// cred as its current credential ("" for none).
func v1Registration(cred string) store.Registration {
	return store.Registration{ID: "inst-1", APIVersion: store.APIv1, HerokuID: "app1@heroku.com",
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: cred}
}

// A live instance registered again with another app, API version or config
// vars is pushed there from its next rotation: its history says what
// changed, where it said nothing (an import whose line named another
// instance's id pointed that instance at another customer's app without a
// trace). The same registration again writes nothing.
func TestARegistrationThatChangesWhereRotationsGoIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := store.Registration{ID: "inst-1", APIVersion: store.APIv1, HerokuID: "app1@heroku.com",
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}
	for range 2 {
		if err := f.st.PutInstance(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	changes := func() []string {
		t.Helper()
		events, err := f.st.Events(ctx, "inst-1", 20)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range events {
			if e.Type == store.EventRegistered && strings.HasPrefix(e.Detail, "registration changed") {
				out = append(out, e.Detail)
			}
		}
		return out
	}
	if got := changes(); len(got) != 0 {
		t.Fatalf("the same registration twice recorded changes: %q", got)
	}
	reg.HerokuID, reg.ConfigVars = "app77@heroku.com", []string{"MYADDON_URL", "MYADDON_TOKEN"}
	if err := f.st.PutInstance(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if got := changes(); len(got) != 1 || got[0] != "registration changed: heroku_id, config_vars" {
		t.Errorf("changes recorded = %q, want one naming heroku_id and config_vars", got)
	}
}

// An instance set aside because its OAuth tokens cannot be used ("register
// it again with oauth_grant or oauth") is back in scheduled rotation once a
// registration stores new tokens: set aside still, it was never rotated
// again on schedule although the partner did what the reason asked. A
// registration without tokens, and a quarantine for another reason, leave
// it set aside.
func TestARegistrationWithNewTokensEndsAQuarantineThatAskedForThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	tok := heroku.Token{AccessToken: secret.New("access-1"), RefreshToken: secret.New("refresh-1"), ExpiresAt: f.now.Add(time.Hour)}
	refused := "Heroku refused to renew the add-on's OAuth token (its authorization was revoked): register it again with oauth_grant or oauth"
	for id, reason := range map[string]string{"inst-1": refused, "inst-2": "Heroku reports the add-on suspended; rekey keeps the registration until the partner deprovisions it"} {
		reg := store.Registration{ID: id, APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}}
		if err := f.st.Register(ctx, reg, &tok); err != nil {
			t.Fatal(err)
		}
		if ok, err := f.st.Quarantine(ctx, id, reason); !ok || err != nil {
			t.Fatalf("Quarantine(%s) = %v, %v", id, ok, err)
		}
		// An update without tokens changes nothing of the tokens.
		if err := f.st.Register(ctx, reg, nil); err != nil {
			t.Fatal(err)
		}
		if in, _ := f.st.Instance(ctx, id); !in.Quarantined() {
			t.Fatalf("%s: a registration without tokens ended the quarantine", id)
		}
		again := heroku.Token{AccessToken: secret.New("access-2"), RefreshToken: secret.New("refresh-2"), ExpiresAt: f.now.Add(time.Hour)}
		if err := f.st.Register(ctx, reg, &again); err != nil {
			t.Fatal(err)
		}
	}
	in, _ := f.st.Instance(ctx, "inst-1")
	if in.Quarantined() || in.QuarantineReason != "" || in.NextRotationAt.IsZero() {
		t.Errorf("inst-1 registered again with new tokens: quarantined %v (%q), next rotation %v; want scheduled again",
			in.Quarantined(), in.QuarantineReason, in.NextRotationAt)
	}
	if !eventSet(t, f.st, "inst-1")[store.EventUnquarantined] {
		t.Error("inst-1: no unquarantined event")
	}
	if in, _ := f.st.Instance(ctx, "inst-2"); !in.Quarantined() || !in.NextRotationAt.IsZero() {
		t.Errorf("inst-2, set aside for another reason: quarantined %v, next rotation %v; want it set aside still", in.Quarantined(), in.NextRotationAt)
	}
	if ids, n, _ := f.st.Quarantined(ctx, 10); n != 1 || ids[0] != "inst-2" {
		t.Errorf("quarantined %v (%d); want inst-2 alone", ids, n)
	}
}
