package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// minted claims rotation rot of inst and saves cred as its pending
// credential.
func (f *fixture) minted(t *testing.T, inst, rot, cred string) {
	t.Helper()
	mustClaim(t, f.st, inst, rot)
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:" + cred + "@db")}
	if err := f.st.SavePending(context.Background(), inst, rot, cred, cfg); err != nil {
		t.Fatal(err)
	}
}

func eventSet(t *testing.T, st *store.Store, inst string) map[string]bool {
	t.Helper()
	events, err := st.Events(context.Background(), inst, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range events {
		out[e.Type] = true
	}
	return out
}

// A credential whose push was attempted is kept, unconfirmed and not due
// for revocation, when the failure brings no proof that Heroku does not
// hold it (I1); the instance's next promotion makes it previous, due after
// the grace (I3).
func TestFailKeepsAPushedCredentialWithoutProof(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.minted(t, "inst-1", "rot-1", "cred-1")
	if err := f.st.MarkPushAttempt(ctx, "rot-1", pushTarget(t, f.st, "inst-1")); err != nil {
		t.Fatal(err)
	}
	// The push was answered (403): no attempt is left on its way.
	if err := f.st.SettlePush(ctx, "rot-1", 1); err != nil {
		t.Fatal(err)
	}
	res, err := f.st.FailRotation(ctx, "inst-1", "rot-1", store.Failure{Code: "push:forbidden", Cause: "push: 403"})
	if err != nil || res.Discarded != nil || res.Unconfirmed != "cred-1" {
		t.Fatalf("FailRotation = %+v, %v; want cred-1 kept unconfirmed, nothing discarded", res, err)
	}
	if rot, _ := f.st.Rotation(ctx, "rot-1"); rot.Unconfirmed != "cred-1" || rot.State != store.RotationFailed {
		t.Errorf("rotation = %+v, want failed with cred-1 unconfirmed", rot)
	}
	c, _ := f.st.Credential(ctx, "inst-1", "cred-1")
	if n, _ := f.st.PendingRevocations(ctx); c.State != store.CredentialUnconfirmed || n != 0 {
		t.Fatalf("credential %s with %d revocations due; want unconfirmed and none due", c.State, n)
	}
	if !eventSet(t, f.st, "inst-1")[store.EventPushUnknown] {
		t.Error("no push_unknown event")
	}
	if again, _ := f.st.FailRotation(ctx, "inst-1", "rot-1", store.Failure{NotHeld: true}); again.Unconfirmed != "cred-1" || again.Discarded != nil {
		t.Errorf("failing again = %+v, want the first failure's answer", again)
	}

	f.minted(t, "inst-1", "rot-2", "cred-2")
	if _, err := f.st.Promote(ctx, "inst-1", "rot-2", "cred-2", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	c, _ = f.st.Credential(ctx, "inst-1", "cred-1")
	if c.State != store.CredentialPrevious || !c.RevokeAt.Equal(f.now.Add(time.Hour)) {
		t.Fatalf("after the next promotion: %s due %s, want previous due %s", c.State, c.RevokeAt, f.now.Add(time.Hour))
	}
}

// With the proof (Heroku's config read back holds other values) the
// pushed credential is discarded and due for revocation at once.
func TestFailDiscardsAPushedCredentialWithProof(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.minted(t, "inst-1", "rot-1", "cred-1")
	if err := f.st.MarkPushAttempt(ctx, "rot-1", pushTarget(t, f.st, "inst-1")); err != nil {
		t.Fatal(err)
	}
	res, err := f.st.FailRotation(ctx, "inst-1", "rot-1", store.Failure{Code: "push:invalid_params", NotHeld: true, Attempts: 1})
	if err != nil || res.Discarded == nil || res.Discarded.CredentialID != "cred-1" || res.Unconfirmed != "" {
		t.Fatalf("FailRotation = %+v, %v; want cred-1 discarded", res, err)
	}
}

// A push attempt is refused once the rotation ended: the credential may
// have been discarded, and must not be sent.
func TestMarkPushAttemptRefusesAFinishedRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.minted(t, "inst-1", "rot-1", "cred-1")
	if _, err := f.st.Fail(ctx, "inst-1", "rot-1", "verify:issuer_422", "verify: 422"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkPushAttempt(ctx, "rot-1", pushTarget(t, f.st, "inst-1")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("MarkPushAttempt after a failure = %v, want ErrConflict", err)
	}
}

// Two runs of one rotation at once, one about to push and one failing it
// on a stale view without proof: whichever the store serves first, a
// credential whose push went ahead is never discarded (I1, issue case 9).
func TestConcurrentRunsNeverDiscardAPushedCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	pushed, refused := 0, 0
	for i := range 40 {
		inst, rot, cred := fmt.Sprintf("inst-%d", i), fmt.Sprintf("rot-%d", i), fmt.Sprintf("new-%d", i)
		f.register(t, inst, "cred-0")
		f.minted(t, inst, rot, cred)
		var markErr, failErr error
		var res store.Failed
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); markErr = f.st.MarkPushAttempt(ctx, rot, pushTarget(t, f.st, inst)) }()
		go func() {
			defer wg.Done()
			res, failErr = f.st.FailRotation(ctx, inst, rot, store.Failure{Code: "verify:issuer_422", Cause: "verify: 422"})
		}()
		wg.Wait()
		if failErr != nil || markErr != nil && !errors.Is(markErr, store.ErrConflict) {
			t.Fatalf("run %d: mark %v, fail %v", i, markErr, failErr)
		}
		c, _ := f.st.Credential(ctx, inst, cred)
		switch {
		case markErr == nil && (res.Discarded != nil || c.State != store.CredentialUnconfirmed):
			t.Fatalf("run %d: the push went ahead, yet the credential is %s (discarded %+v)", i, c.State, res.Discarded)
		case markErr == nil:
			pushed++
		case c.State != store.CredentialDiscarded:
			t.Fatalf("run %d: the push was refused, yet the credential is %s, not discarded", i, c.State)
		default:
			refused++
		}
	}
	t.Logf("40 races: %d pushes went ahead (credential kept), %d were refused (credential discarded)", pushed, refused)
}

// A registration after a deprovision registers the instance again: live,
// scheduled, rotatable, with the credential it names as current.
func TestPutInstanceRegistersADeprovisionedInstanceAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	f.register(t, "inst-1", "cred-9")
	in, err := f.st.Instance(ctx, "inst-1")
	if err != nil || in.Deprovisioned() || in.CurrentCredential != "cred-9" || in.NextRotationAt.IsZero() {
		t.Fatalf("instance = %+v, %v; want live, cred-9 current, scheduled", in, err)
	}
	if n, _ := f.st.CountInstances(ctx); n != 1 {
		t.Errorf("live instances: %d, want 1", n)
	}
	if c := mustClaim(t, f.st, "inst-1", "rot-1"); c.Status != store.Claimed {
		t.Errorf("claim after registering again = %s, want claimed", c.Status)
	}
}

// An instance provisioned again with a credential its earlier life rotated
// away and still waits to revoke (a provisioning answered with the
// credential minted for the first) makes it current and takes it out of
// the revocations that wait: the app holds it. Its other waiting
// credentials still wait.
func TestRegisteredAgainWithAWaitingCredentialTakesItOutOfTheRevocations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}, "cred-1")
	f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-2"}, "cred-2")
	if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	f.register(t, "inst-1", "cred-0")
	if c, _ := f.st.Credential(ctx, "inst-1", "cred-0"); c.State != store.CredentialCurrent || !c.RevokeAt.IsZero() {
		t.Errorf("cred-0 = %+v, want current with no revoke time", c)
	}
	prev, err := f.st.Previous(ctx, "inst-1")
	if err != nil || len(prev) != 1 || prev[0].CredentialID != "cred-1" {
		t.Errorf("previous = %+v, %v; want cred-1 alone", prev, err)
	}
	due, _ := f.st.DueRevocations(ctx, f.now.Add(24*time.Hour), 10)
	if len(due) != 1 || due[0].CredentialID != "cred-1" {
		t.Errorf("due revocations = %+v, want cred-1 alone", due)
	}
}

// A registration after a deprovisioning that names a credential whose
// revocation is due, or due within RevokeDueMargin, is refused with
// nothing written: its revoke task may be at the issuer's DELETE already,
// and the app would be handed a credential the issuer is revoking (I1). A
// hold does not move the credential's revoke time, so a held revocation,
// its revoke time passed, is due too. Further from its revoke time it waits
// no more (TestRegisteredAgainWithAWaitingCredentialTakesItOutOfTheRevocations).
func TestRegisteringACredentialDueForRevocationAsCurrentIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		after time.Duration // from the promotion; the grace is an hour
		held  bool
	}{
		{name: "within the margin", after: time.Hour - store.RevokeDueMargin},
		{name: "revoke time passed", after: time.Hour + time.Second},
		{name: "held", after: 2 * time.Hour, held: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.register(t, "inst-1", "cred-0")
			f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}, "cred-1")
			c, _ := f.st.Credential(ctx, "inst-1", "cred-0")
			if tc.held {
				h := store.Hold{InstanceID: "inst-1", CredentialID: "cred-0", RevokeAt: c.RevokeAt, HeldAt: c.RevokeAt,
					CapAt: c.RevokeAt.Add(24 * time.Hour), CheckedAt: c.RevokeAt}
				if err := f.st.SaveHold(ctx, h, store.EventRevocationHeld, "in use"); err != nil {
					t.Fatal(err)
				}
			}
			f.now = f.now.Add(tc.after)
			if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
				t.Fatal(err)
			}
			again := store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"},
				CurrentCredentialID: "cred-0"}
			if err := f.st.CheckCurrent(ctx, again); !errors.Is(err, store.ErrCredentialRevokeDue) {
				t.Errorf("CheckCurrent = %v, want ErrCredentialRevokeDue", err)
			}
			if err := f.st.PutInstance(ctx, again); !errors.Is(err, store.ErrCredentialRevokeDue) {
				t.Errorf("registered again naming the credential due for revocation: %v, want ErrCredentialRevokeDue", err)
			}
			in, err := f.st.Instance(ctx, "inst-1")
			if err != nil || in.DeprovisionedAt.IsZero() || in.CurrentCredential != "cred-1" {
				t.Errorf("instance after the refusal: %+v, %v; want it deprovisioned with cred-1, untouched", in, err)
			}
			after, _ := f.st.Credential(ctx, "inst-1", "cred-0")
			due, _ := f.st.DueRevocations(ctx, f.now.Add(24*time.Hour), 10)
			if after.State != store.CredentialPrevious || !after.RevokeAt.Equal(c.RevokeAt) || len(due) != 1 || due[0].CredentialID != "cred-0" {
				t.Errorf("cred-0 after the refusal: %+v, due %+v; want it previous and due as before", after, due)
			}
		})
	}
}

// Quarantine sets an instance aside with a reason, once; a deprovisioned
// instance is left alone; Unquarantine clears the reason.
func TestQuarantineWithReason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	if ok, err := f.st.Quarantine(ctx, "inst-1", "Heroku reports the add-on deprovisioned"); !ok || err != nil {
		t.Fatalf("Quarantine = %v, %v", ok, err)
	}
	if ok, _ := f.st.Quarantine(ctx, "inst-1", "again"); ok {
		t.Error("quarantined twice")
	}
	in, _ := f.st.Instance(ctx, "inst-1")
	ids, n, _ := f.st.Quarantined(ctx, 10)
	if !in.Quarantined() || in.QuarantineReason != "Heroku reports the add-on deprovisioned" || !in.NextRotationAt.IsZero() || n != 1 || ids[0] != "inst-1" {
		t.Fatalf("instance = %+v, quarantined %v (%d); want quarantined with the first reason, unscheduled", in, ids, n)
	}
	if !eventSet(t, f.st, "inst-1")[store.EventQuarantined] {
		t.Error("no quarantined event")
	}
	if _, err := f.st.Unquarantine(ctx, "inst-1", "operator"); err != nil {
		t.Fatal(err)
	}
	if in, _ := f.st.Instance(ctx, "inst-1"); in.Quarantined() || in.QuarantineReason != "" {
		t.Errorf("after Unquarantine: %+v", in)
	}
	f.register(t, "inst-2", "")
	_ = f.st.Deprovision(ctx, "inst-2")
	if ok, err := f.st.Quarantine(ctx, "inst-2", "gone"); ok || err != nil {
		t.Errorf("Quarantine of a deprovisioned instance = %v, %v; want false, nil", ok, err)
	}
	if _, err := f.st.Quarantine(ctx, "nope", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Quarantine of an unknown instance = %v, want ErrNotFound", err)
	}
}

// A read-back proves a credential absent only for the attempts made before
// it: an attempt made since, which may land after the read, voids it.
func TestProofIsVoidAfterAnotherPushAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.minted(t, "inst-1", "rot-1", "cred-1")
	if err := f.st.MarkPushAttempt(ctx, "rot-1", pushTarget(t, f.st, "inst-1")); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SettlePush(ctx, "rot-1", 1); err != nil {
		t.Fatal(err)
	}
	attempts, settled, err := f.st.PushAttempts(ctx, "rot-1")
	if err != nil || attempts != 1 || settled != 1 {
		t.Fatalf("PushAttempts = %d, %d, %v; want 1, 1", attempts, settled, err)
	}
	// Another run attempts a push after the snapshot, before the failure.
	if err := f.st.MarkPushAttempt(ctx, "rot-1", pushTarget(t, f.st, "inst-1")); err != nil {
		t.Fatal(err)
	}
	res, err := f.st.FailRotation(ctx, "inst-1", "rot-1", store.Failure{Code: "push:invalid_params", NotHeld: true, Attempts: attempts})
	if err != nil || res.Discarded != nil || res.Unconfirmed != "cred-1" {
		t.Fatalf("FailRotation = %+v, %v; want the stale proof refused and cred-1 kept", res, err)
	}
}

// A registration that would make current a credential of the instance
// that was revoked (a re-provisioning that names the first provisioning's
// credential, long rotated away and revoked) is refused, with nothing
// written: an app given it could not connect. An update of the live
// instance naming it (the provisioning's PUT sent again) changes no
// current credential, and is accepted as before.
func TestRegisteringARevokedCredentialAsCurrentIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}, "cred-1")
	if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
		t.Fatal(err)
	}
	again := store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"},
		CurrentCredentialID: "cred-0"}
	if err := f.st.PutInstance(ctx, again); err != nil {
		t.Errorf("the provisioning's registration sent again to the live instance: %v", err)
	}
	if err := f.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CheckCurrent(ctx, again); !errors.Is(err, store.ErrCredentialRevoked) {
		t.Errorf("CheckCurrent = %v, want ErrCredentialRevoked", err)
	}
	if err := f.st.PutInstance(ctx, again); !errors.Is(err, store.ErrCredentialRevoked) {
		t.Errorf("registered again naming the revoked credential: %v, want ErrCredentialRevoked", err)
	}
	in, err := f.st.Instance(ctx, "inst-1")
	if err != nil || in.DeprovisionedAt.IsZero() || in.CurrentCredential != "cred-1" {
		t.Errorf("instance after the refusal: %+v, %v; want it deprovisioned with cred-1, untouched", in, err)
	}
	if c, _ := f.st.Credential(ctx, "inst-1", "cred-0"); c.State != store.CredentialRevoked {
		t.Errorf("cred-0 after the refusal: %+v, want revoked", c)
	}
	fresh := again
	fresh.CurrentCredentialID = "cred-new"
	if err := f.st.CheckCurrent(ctx, fresh); err != nil {
		t.Errorf("CheckCurrent with a new credential: %v", err)
	}
	if err := f.st.PutInstance(ctx, fresh); err != nil {
		t.Fatalf("registered again naming a new credential: %v", err)
	}
	if in, _ := f.st.Instance(ctx, "inst-1"); !in.DeprovisionedAt.IsZero() || in.CurrentCredential != "cred-new" {
		t.Errorf("instance registered again: %+v; want it live with cred-new", in)
	}
}

// A registration sending the same config vars in another order changes
// nothing a push sets: the push is recorded and goes on.
func TestTheSameVarsInAnotherOrderLetThePushGoOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := func(vars ...string) store.Registration {
		return store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: vars}
	}
	if err := f.st.PutInstance(ctx, reg("A_URL", "B_URL")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"A_URL": secret.New("a-1"), "B_URL": secret.New("b-1")}
	if err := f.st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	claimed := pushTarget(t, f.st, "inst-1")
	if err := f.st.PutInstance(ctx, reg("B_URL", "A_URL")); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkPushAttempt(ctx, "rot-1", claimed); err != nil {
		t.Errorf("push after the same vars were sent in another order: %v, want it recorded", err)
	}
	events, err := f.st.Events(ctx, "inst-1", 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.Contains(e.Detail, "registration changed") {
			t.Errorf("the history says %q for the same vars in another order", e.Detail)
		}
	}
}
