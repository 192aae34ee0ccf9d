package handlers_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// gatedRevokeIssuer lets a test act while a revoke task is inside the
// issuer's DELETE (or, equally, inside a usage question of up to 10 s):
// the moment the revoke handler has read the credential as previous and
// not yet revoked it.
type gatedRevokeIssuer struct {
	issuer.Issuer
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (i *gatedRevokeIssuer) Revoke(ctx context.Context, instanceID, credID string) error {
	i.entered <- struct{}{}
	<-i.release
	return i.Issuer.Revoke(ctx, instanceID, credID)
}

// open lets the DELETE go on; opening twice is harmless.
func (i *gatedRevokeIssuer) open() { i.once.Do(func() { close(i.release) }) }

// A registration again after a deprovisioning that names the credential
// whose revocation is due as the instance's current one (a retried
// provisioning answered with the credential minted for the first) never
// leaves that credential revoked while rekey lists it as current and hands
// it to the app (I1). The revoke task reads the credential's state once,
// then revokes at the issuer: a registration landing in between is not
// seen, so the registration refuses a credential whose revoke time has
// passed, and the credential stays waiting and is revoked.
func TestARegistrationDuringARevokeCannotMakeItsCredentialCurrent(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")
	old := before.CurrentCredential
	if err := g.run(rotateTask(t, "inst-1", "rot_race")); err != nil {
		t.Fatal(err)
	}
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", old))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	gate := &gatedRevokeIssuer{Issuer: g.demo, entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(gate.open)
	g.deps.Issuer = gate
	g.later.Store(int64(grace + time.Second))

	done := make(chan error, 1)
	go func() { done <- g.run(revoke) }()
	<-gate.entered

	// The partner deprovisions, then Heroku's retried provisioning
	// registers the add-on again naming the old credential as current.
	web := g.storeOnClock()
	if err := web.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	reg := store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar},
		CurrentCredentialID: old}
	if err := web.CheckCurrent(ctx, reg); !errors.Is(err, store.ErrCredentialRevokeDue) {
		t.Errorf("CheckCurrent naming the credential being revoked = %v, want ErrCredentialRevokeDue", err)
	}
	tok := &heroku.Token{AccessToken: secret.New("access"), RefreshToken: secret.New("refresh"),
		ExpiresAt: time.Now().Add(time.Hour)}
	if err := web.Register(ctx, reg, tok); !errors.Is(err, store.ErrCredentialRevokeDue) {
		t.Errorf("registration again naming the credential being revoked = %v, want ErrCredentialRevokeDue", err)
	}
	gate.open()
	if err := <-done; err != nil {
		t.Errorf("revoke task: %v", err)
	}

	c, _ := g.st.Credential(ctx, "inst-1", old)
	in, _ := g.st.Instance(ctx, "inst-1")
	if in.CurrentCredential == old && !g.demo.Valid(old) {
		t.Fatalf("I1 broken: credential %s is the instance's current one (state %q) but the issuer revoked it", old, c.State)
	}
	if !c.Revoked() || in.DeprovisionedAt.IsZero() {
		t.Errorf("after the refused registration: credential %+v, instance %+v; want it revoked, the instance deprovisioned", c, in)
	}
}
