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

// A registration repeated after the instance rotated and was
// deprovisioned (the same `rekey instances import` run again, a stale
// provisioning PUT) names the credential rekey rotated away. Made current
// again, it would stay in the apps' config while its revocation is due:
// the store refuses it and changes nothing. The same instance registered
// with a new credential comes back, as a later provisioning should.
func TestRegistrationCannotRevivePreviousCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	publish(t, f, time.Hour, 3)
	tok := heroku.Token{AccessToken: secret.New("access-1"), RefreshToken: secret.New("refresh-1"), ExpiresAt: f.now.Add(time.Hour)}
	reg := store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}
	if err := f.st.Register(ctx, reg, &tok); err != nil {
		t.Fatal(err)
	}
	f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}, "cred-1")
	if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}

	before := redistest.Dump(t, f.r)
	refused := func(what string, err error, state string) {
		t.Helper()
		var cs *store.CredentialStateError
		if !errors.Is(err, store.ErrCredentialNotCurrent) || !errors.As(err, &cs) || cs.State != state ||
			cs.InstanceID != "inst-1" || cs.CredentialID != "cred-0" {
			t.Fatalf("%s naming the %s cred-0: %v; want a *CredentialStateError", what, state, err)
		}
		if after := redistest.Dump(t, f.r); after != before {
			t.Fatalf("%s was refused but changed Redis:\n%s", what, after)
		}
	}
	refused("Register", f.st.Register(ctx, reg, &tok), store.CredentialPrevious)
	refused("PutInstance", f.st.PutInstance(ctx, reg), store.CredentialPrevious)
	refused("CheckCurrentCredential", f.st.CheckCurrentCredential(ctx, "inst-1", "cred-0"), store.CredentialPrevious)
	if c, _ := f.st.Credential(ctx, "inst-1", "cred-0"); c.State != store.CredentialPrevious {
		t.Fatalf("cred-0 is %s, want still previous", c.State)
	}
	if in := instance(t, f, "inst-1"); !in.Deprovisioned() {
		t.Fatal("a refused registration brought the instance back")
	}

	// Revoked, it is refused the same way.
	if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
		t.Fatal(err)
	}
	before = redistest.Dump(t, f.r)
	refused("Register after the revocation", f.st.Register(ctx, reg, &tok), store.CredentialRevoked)

	// A new provisioning, with a new credential, registers it again.
	reg.CurrentCredentialID = "cred-new"
	if err := f.st.CheckCurrentCredential(ctx, "inst-1", "cred-new"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Register(ctx, reg, &tok); err != nil {
		t.Fatalf("registration again with a new credential: %v", err)
	}
	if in := instance(t, f, "inst-1"); in.Deprovisioned() || in.CurrentCredential != "cred-new" {
		t.Fatalf("after the new provisioning: deprovisioned %v, current %q; want live with cred-new", in.Deprovisioned(), in.CurrentCredential)
	}
	// An update of the live instance naming an old credential leaves its
	// current one, as before.
	reg.CurrentCredentialID = "cred-0"
	if err := f.st.Register(ctx, reg, nil); err != nil {
		t.Fatalf("update of a live instance naming an old credential: %v", err)
	}
	if in := instance(t, f, "inst-1"); in.CurrentCredential != "cred-new" {
		t.Fatalf("current %q after the update, want cred-new", in.CurrentCredential)
	}
}

// A credential discarded by a failed rotation cannot be named current by
// an instance that has none.
func TestRegistrationCannotNameDiscardedCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-2", "")
	mustClaim(t, f.st, "inst-2", "rot-1")
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:d1sc@db/2")}
	if err := f.st.SavePending(ctx, "inst-2", "rot-1", "cred-d", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, "inst-2", "rot-1", "verify:issuer_422", "issuer verify: status 422"); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.st.Credential(ctx, "inst-2", "cred-d"); c.State != store.CredentialDiscarded {
		t.Fatalf("cred-d is %s, want discarded", c.State)
	}
	err := f.st.PutInstance(ctx, store.Registration{ID: "inst-2", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-d"})
	var cs *store.CredentialStateError
	if !errors.As(err, &cs) || cs.State != store.CredentialDiscarded {
		t.Fatalf("registration naming the discarded cred-d: %v", err)
	}
	if in := instance(t, f, "inst-2"); in.CurrentCredential != "" {
		t.Fatalf("current %q, want none", in.CurrentCredential)
	}
}
