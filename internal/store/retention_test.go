package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A rotation cancelled with its batch expires like a finished one (case 14
// of issue 8).
func TestCancelledRotationExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-c", "cred-0")
	if err := f.st.CreateBatch(ctx, "b-1", "test", 1); err != nil {
		t.Fatal(err)
	}
	req := store.RotationRequest{InstanceID: "inst-c", RotationID: "rot-c", BatchID: "b-1"}
	if _, err := f.st.ClaimBrief(ctx, req); err != nil {
		t.Fatal(err)
	}
	if d, err := f.st.RotationExpiry(ctx, "rot-c"); err != nil || d != 0 {
		t.Fatalf("rotation in flight expires in %s (%v); want no expiry", d, err)
	}
	if err := f.st.CancelBatch(ctx, "b-1"); err != nil {
		t.Fatal(err)
	}
	c, err := f.st.Claim(ctx, req)
	if err != nil || c.State != store.RotationCancelled {
		t.Fatalf("claim after cancel = %+v, %v; want the rotation cancelled", c, err)
	}
	if d, err := f.st.RotationExpiry(ctx, "rot-c"); err != nil || d < 29*24*time.Hour {
		t.Errorf("cancelled rotation expires in %s (%v); want about 30 days", d, err)
	}
}

// A deprovisioned instance's keys expire after the retention, but only once
// none of its credentials waits for revocation; a new registration would
// lift the expiry again (keep_instance).
func TestDeprovisionedInstanceExpiresAfterItsLastRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-x", "cred-0")
	mustClaim(t, f.st, "inst-x", "rot-x")
	if err := f.st.SavePending(ctx, "inst-x", "rot-x", "cred-1", map[string]secret.String{"MYADDON_URL": secret.New("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, "inst-x", "rot-x", "cred-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Deprovision(ctx, "inst-x"); err != nil {
		t.Fatal(err)
	}
	ids, _, _, err := f.st.RetiringAfter(ctx, store.Cursor{}, 10)
	if err != nil || len(ids) != 1 || ids[0] != "inst-x" {
		t.Fatalf("retiring = %v, %v; want inst-x", ids, err)
	}
	if ok, err := f.st.ExpireRetired(ctx, "inst-x"); ok || err != nil {
		t.Fatalf("ExpireRetired with cred-0 waiting = %v, %v; want no expiry yet", ok, err)
	}
	if d, _ := f.st.InstanceExpiry(ctx, "inst-x"); d != 0 {
		t.Fatalf("instance expires in %s while cred-0 waits", d)
	}
	if err := f.st.MarkRevoked(ctx, "inst-x", "cred-0"); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.ExpireRetired(ctx, "inst-x"); !ok || err != nil {
		t.Fatalf("ExpireRetired after the last revocation = %v, %v; want the expiry set", ok, err)
	}
	if d, err := f.st.InstanceExpiry(ctx, "inst-x"); err != nil || d < 29*24*time.Hour || d > 30*24*time.Hour {
		t.Errorf("instance expires in %s (%v); want the 30-day default retention", d, err)
	}
	if ev, _ := f.st.Events(ctx, "inst-x", 1); len(ev) != 1 || ev[0].Type != store.EventExpiring {
		t.Errorf("last event %+v; want %s", ev, store.EventExpiring)
	}
	if ids, _, _, _ := f.st.RetiringAfter(ctx, store.Cursor{}, 10); len(ids) != 0 {
		t.Errorf("retiring after expiry = %v; want empty", ids)
	}
}

// A discarded credential waiting for revocation, which no per-instance
// index lists, also holds the expiry back.
func TestDiscardedCredentialHoldsTheExpiryBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-y", "cred-0")
	mustClaim(t, f.st, "inst-y", "rot-y")
	if err := f.st.SavePending(ctx, "inst-y", "rot-y", "cred-1", map[string]secret.String{"MYADDON_URL": secret.New("v")}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Deprovision(ctx, "inst-y"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.st.ExpireRetired(ctx, "inst-y"); ok {
		t.Fatal("expiry set while a rotation is in flight")
	}
	if _, err := f.st.Fail(ctx, "inst-y", "rot-y", "test", "test failure"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.st.ExpireRetired(ctx, "inst-y"); ok {
		t.Fatal("expiry set while the discarded cred-1 waits for revocation")
	}
	if err := f.st.MarkRevoked(ctx, "inst-y", "cred-1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.ExpireRetired(ctx, "inst-y"); !ok || err != nil {
		t.Fatalf("ExpireRetired after cred-1 was revoked = %v, %v; want the expiry set", ok, err)
	}
}

func TestAuditRetentionOption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.st = store.New(f.r.Client, nil, store.WithAuditRetention(2*time.Hour))
	f.register(t, "inst-z", "cred-0")
	if err := f.st.Deprovision(ctx, "inst-z"); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.ExpireRetired(ctx, "inst-z"); !ok || err != nil {
		t.Fatalf("ExpireRetired = %v, %v", ok, err)
	}
	if d, _ := f.st.InstanceExpiry(ctx, "inst-z"); d <= time.Hour || d > 2*time.Hour {
		t.Errorf("instance expires in %s, want 2h", d)
	}
}

// The keys written beside a registration (the sealed log_input_url, the
// database's location) expire with the deprovisioned instance, and a new
// registration lifts their expiry again.
func TestSideKeysExpireWithTheInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	db := store.Database{Server: "main", Name: "d1", Owner: "d1_owner"}
	if err := f.st.PutInstance(ctx, withDatabase("inst-s", db)); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SaveLogInput(ctx, "inst-s", secret.New("https://token@logs.example/logs")); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Deprovision(ctx, "inst-s"); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.ExpireRetired(ctx, "inst-s"); !ok || err != nil {
		t.Fatalf("ExpireRetired = %v, %v; want the expiry set", ok, err)
	}
	for _, k := range []string{"rekey:loginput:inst-s", "rekey:database:inst-s"} {
		if d := f.r.Client.TTL(ctx, k).Val(); d < 29*24*time.Hour || d > 30*24*time.Hour {
			t.Errorf("%s expires in %s; want the 30-day retention", k, d)
		}
	}
	if err := f.st.SaveLogInput(ctx, "inst-s", secret.New("https://token2@logs.example/logs")); err != nil {
		t.Fatal(err)
	}
	// Registered again without its location, the instance keeps it.
	if err := f.st.PutInstance(ctx, store.Registration{ID: "inst-s", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rekey:loginput:inst-s", "rekey:database:inst-s"} {
		if d := f.r.Client.TTL(ctx, k).Val(); d != -1 {
			t.Errorf("%s expires in %s after a new registration; want no expiry", k, d)
		}
	}
}
