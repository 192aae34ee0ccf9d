package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// keptUnconfirmed fails rotation rot of inst after a push attempt of cred,
// settling n attempts, so that cred is kept unconfirmed.
func (f *fixture) keptUnconfirmed(t *testing.T, inst, rot, cred string, settled int) {
	t.Helper()
	ctx := context.Background()
	f.minted(t, inst, rot, cred)
	if err := f.st.MarkPushAttempt(ctx, rot, pushTarget(t, f.st, inst)); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SettlePush(ctx, rot, settled); err != nil {
		t.Fatal(err)
	}
	res, err := f.st.FailRotation(ctx, inst, rot, store.Failure{Code: "push:forbidden", Cause: "push: 403"})
	if err != nil || res.Unconfirmed != cred {
		t.Fatalf("FailRotation = %+v, %v; want %s kept unconfirmed", res, err, cred)
	}
}

// An unconfirmed credential whose own push is still on its way survives
// the next promotion (that push may land after it, I1); the first
// promotion after the push settles makes it previous (I3).
func TestPromotionKeepsAnUnconfirmedCredentialWhosePushIsUnanswered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.keptUnconfirmed(t, "inst-1", "rot-1", "cred-1", 0)

	f.minted(t, "inst-1", "rot-2", "cred-2")
	p, err := f.st.PromoteRotation(ctx, "inst-1", "rot-2", "cred-2", time.Hour, "")
	if err != nil || len(p.Unconfirmed) != 0 {
		t.Fatalf("promote = %+v, %v; want no unconfirmed credential superseded", p, err)
	}
	if c, _ := f.st.Credential(ctx, "inst-1", "cred-1"); c.State != store.CredentialUnconfirmed {
		t.Fatalf("cred-1 is %s while its push is unanswered, want unconfirmed", c.State)
	}

	if err := f.st.SettlePush(ctx, "rot-1", 1); err != nil {
		t.Fatal(err)
	}
	f.minted(t, "inst-1", "rot-3", "cred-3")
	p, err = f.st.PromoteRotation(ctx, "inst-1", "rot-3", "cred-3", time.Hour, "")
	if err != nil || len(p.Unconfirmed) != 1 || p.Unconfirmed[0].CredentialID != "cred-1" {
		t.Fatalf("promote after the push settled = %+v, %v; want cred-1 superseded", p, err)
	}
	c, _ := f.st.Credential(ctx, "inst-1", "cred-1")
	if c.State != store.CredentialPrevious || !c.RevokeAt.Equal(f.now.Add(time.Hour)) {
		t.Errorf("cred-1 is %s due %s, want previous due %s", c.State, c.RevokeAt, f.now.Add(time.Hour))
	}
}

// A push that got no answer (or a 5xx) is never settled by an answer; it
// settles by itself once it is older than the window in which Heroku might
// still apply it: PushAttempts counts it settled, and the next promotion
// makes its unconfirmed credential previous (I3), where one a moment
// before the window ends kept it (I1).
func TestUnansweredPushSettlesAfterTheWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.keptUnconfirmed(t, "inst-1", "rot-1", "cred-1", 0)
	if a, settled, err := f.st.PushAttempts(ctx, "rot-1"); err != nil || a != 1 || settled != 0 {
		t.Fatalf("PushAttempts = %d, %d, %v; want 1 unsettled", a, settled, err)
	}

	f.now = f.now.Add(store.UnansweredPushWindow - time.Millisecond)
	f.minted(t, "inst-1", "rot-2", "cred-2")
	if p, err := f.st.PromoteRotation(ctx, "inst-1", "rot-2", "cred-2", time.Hour, ""); err != nil || len(p.Unconfirmed) != 0 {
		t.Fatalf("promote within the window = %+v, %v; want cred-1 kept", p, err)
	}

	f.now = f.now.Add(time.Millisecond)
	if a, settled, err := f.st.PushAttempts(ctx, "rot-1"); err != nil || settled != a {
		t.Fatalf("PushAttempts after the window = %d, %d, %v; want all settled", a, settled, err)
	}
	f.minted(t, "inst-1", "rot-3", "cred-3")
	p, err := f.st.PromoteRotation(ctx, "inst-1", "rot-3", "cred-3", time.Hour, "")
	if err != nil || len(p.Unconfirmed) != 1 || p.Unconfirmed[0].CredentialID != "cred-1" {
		t.Fatalf("promote after the window = %+v, %v; want cred-1 superseded", p, err)
	}
}

// Deprovisioning discards the instance's unconfirmed credentials, due in
// the revoke-due index after the grace (no promotion will ever come, I3),
// and the instance's keys do not expire while they wait.
func TestDeprovisionDiscardsUnconfirmedCredentialsAfterTheGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.keptUnconfirmed(t, "inst-1", "rot-1", "cred-1", 1)

	if err := f.st.DeprovisionWithGrace(ctx, "inst-1", store.DeprovisionGrace{Default: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.Credential(ctx, "inst-1", "cred-1")
	if c.State != store.CredentialDiscarded || !c.RevokeAt.Equal(f.now.Add(2*time.Hour)) {
		t.Fatalf("cred-1 is %s due %s, want discarded due %s", c.State, c.RevokeAt, f.now.Add(2*time.Hour))
	}
	if due, _ := f.st.DueRevocations(ctx, f.now, 10); len(due) != 0 {
		t.Errorf("due now: %+v, want nothing before the grace (I2)", due)
	}
	due, err := f.st.DueRevocations(ctx, f.now.Add(2*time.Hour), 10)
	if err != nil || len(due) != 1 || due[0].CredentialID != "cred-1" {
		t.Errorf("due after the grace: %+v, %v; want cred-1", due, err)
	}
	if expiring, err := f.st.ExpireRetired(ctx, "inst-1"); err != nil || expiring {
		t.Errorf("ExpireRetired = %v, %v; want waiting for cred-1's revocation", expiring, err)
	}
}

// An instance registered, before the grace ceiling, with a grace of its own
// longer than the ceiling has its unconfirmed credentials revoked at the
// ceiling when it is deprovisioned, not after its own grace.
func TestDeprovisionKeepsToTheGraceCeiling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if err := f.st.PutInstance(ctx, store.Registration{ID: "inst-g", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0", Grace: 2562047 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	f.keptUnconfirmed(t, "inst-g", "rot-1", "cred-1", 1)
	if err := f.st.DeprovisionWithGrace(ctx, "inst-g", store.DeprovisionGrace{Default: 2 * time.Hour, Max: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.Credential(ctx, "inst-g", "cred-1")
	if c.State != store.CredentialDiscarded || !c.RevokeAt.Equal(f.now.Add(7*24*time.Hour)) {
		t.Fatalf("cred-1 is %s due %s, want discarded due %s", c.State, c.RevokeAt, f.now.Add(7*24*time.Hour))
	}
}

// TestDeprovisionKeepsToTheGraceFloor: an instance registered with a grace
// of 10 minutes, before REKEY_MIN_GRACE was raised to an hour, keeps its
// unconfirmed credential valid for the floor when it is deprovisioned, as
// its rotations would, not for its own shorter grace.
func TestDeprovisionKeepsToTheGraceFloor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if err := f.st.PutInstance(ctx, store.Registration{ID: "inst-f", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0", Grace: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	f.keptUnconfirmed(t, "inst-f", "rot-1", "cred-1", 1)
	if err := f.st.DeprovisionWithGrace(ctx, "inst-f", store.DeprovisionGrace{Default: 2 * time.Hour,
		Min: time.Hour, Max: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.Credential(ctx, "inst-f", "cred-1")
	if c.State != store.CredentialDiscarded || !c.RevokeAt.Equal(f.now.Add(time.Hour)) {
		t.Fatalf("cred-1 is %s due %s, want discarded due %s", c.State, c.RevokeAt, f.now.Add(time.Hour))
	}
}

// Unconfirmed lists what the instance keeps unrevoked for want of a known
// push outcome, with the rotation that minted it and since when, and stops
// listing it once a promotion has made it previous.
func TestUnconfirmedListsWhatIsKeptUntilAPromotionSupersedesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	if got, err := f.st.Unconfirmed(ctx, "inst-1"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Unconfirmed before any failure = %#v, %v; want an empty list", got, err)
	}
	f.keptUnconfirmed(t, "inst-1", "rot-1", "cred-1", 1)
	got, err := f.st.Unconfirmed(ctx, "inst-1")
	want := store.UnconfirmedCredential{CredentialID: "cred-1", RotationID: "rot-1", Since: f.now}
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("Unconfirmed = %+v, %v; want [%+v]", got, err, want)
	}

	f.minted(t, "inst-1", "rot-2", "cred-2")
	if _, err := f.st.PromoteRotation(ctx, "inst-1", "rot-2", "cred-2", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.Unconfirmed(ctx, "inst-1"); err != nil || len(got) != 0 {
		t.Fatalf("Unconfirmed after the promotion = %+v, %v; want none (cred-1 is previous now)", got, err)
	}
}
