package reconcile_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// The sweep gives a deprovisioned instance's keys their expiry once its
// last waiting credential is revoked, not before.
func TestSweepExpiresADeprovisionedInstanceAfterItsLastRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	prev := w.rotated(t, "gone")
	if err := w.st.Deprovision(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if res, err := w.sweep.Sweep(ctx); err != nil || res.InstancesExpiring != 0 || res.RevokesEnqueued != 1 {
		t.Fatalf("Sweep = %+v, %v; want the waiting revocation enqueued and no expiry", res, err)
	}
	if d, _ := w.st.InstanceExpiry(ctx, "gone"); d != 0 {
		t.Fatalf("instance expires in %s while %s waits for revocation", d, prev.CredentialID)
	}
	if err := w.st.MarkRevoked(ctx, prev.InstanceID, prev.CredentialID); err != nil {
		t.Fatal(err)
	}
	if res, err := w.sweep.Sweep(ctx); err != nil || res.InstancesExpiring != 1 {
		t.Fatalf("Sweep = %+v, %v; want the instance's expiry set", res, err)
	}
	if d, _ := w.st.InstanceExpiry(ctx, "gone"); d <= 0 {
		t.Errorf("instance has no expiry after its last revocation")
	}
}

// A deprovisioned instance's current credential stays in the index of live
// configs (rekey does not revoke it), noted as gone. Once the instance's
// records have expired, the sweep removes both, so that they do not stay
// for good; an instance registered again keeps them, and so does the
// answer to an instance that shares the expired one's config.
func TestSweepPrunesTheLiveConfigsOfExpiredInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	w.st = store.New(w.r.Client, sealer, store.WithAuditRetention(time.Second))
	w.sweep = reconcile.New(reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: w.insp,
		Logger: zerolog.Nop(), Now: func() time.Time { return w.now }})
	config := func(v string) map[string]secret.String {
		return map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:" + v + "@db/1")}
	}
	for _, id := range []string{"gone", "back", "shares"} {
		w.register(t, id)
	}
	for id, v := range map[string]string{"gone": "gone-secret", "back": "back-secret"} {
		if got, err := w.st.LearnCurrentFingerprint(ctx, id, "cred-0", config(v)); err != nil || got != store.FingerprintLearned {
			t.Fatalf("learn %s's config: %v, %v", id, got, err)
		}
	}
	if got, err := w.st.LearnCurrentFingerprint(ctx, "shares", "cred-0", config("gone-secret")); err != nil ||
		got != store.FingerprintLiveElsewhere {
		t.Fatalf("shares, registered with gone's config: %v, %v", got, err)
	}
	members := func() int64 {
		var n int64
		for _, k := range w.r.Client.Keys(ctx, "rekey:live:*").Val() {
			n += w.r.Client.SCard(ctx, k).Val()
		}
		return n
	}
	if n := members(); n != 2 {
		t.Fatalf("index of live configs holds %d entries, want gone's and back's", n)
	}
	for _, id := range []string{"gone", "back"} {
		if err := w.st.Deprovision(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := w.sweep.Sweep(ctx); err != nil || res.InstancesExpiring != 2 || res.LiveConfigsPruned != 0 {
		t.Fatalf("Sweep = %+v, %v; want both instances expiring and nothing pruned while their records last", res, err)
	}
	w.register(t, "back") // provisioned again within its retention
	deadline := time.Now().Add(10 * time.Second)
	for w.r.Client.Exists(ctx, "rekey:instance:gone").Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("gone's records did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := w.r.Client.HLen(ctx, "rekey:live_gone").Val(); n != 2 {
		t.Fatalf("live_gone holds %d entries before the sweep, want 2", n)
	}
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.LiveConfigsPruned != 1 {
		t.Fatalf("Sweep = %+v, %v; want gone's entry pruned", res, err)
	}
	if n := w.r.Client.HLen(ctx, "rekey:live_gone").Val(); n != 1 {
		t.Errorf("live_gone holds %d entries, want back's alone", n)
	}
	if n := members(); n != 1 {
		t.Errorf("index of live configs holds %d entries, want back's alone", n)
	}
	c, err := w.st.Credential(ctx, "shares", "cred-0")
	if err != nil {
		t.Fatal(err)
	}
	if live, err := w.st.LiveElsewhere(ctx, c); err != nil || live {
		t.Errorf("shares' credential after gone expired: live elsewhere %v, %v; want it free to revoke", live, err)
	}
	if res, err := w.sweep.Sweep(ctx); err != nil || res.LiveConfigsPruned != 0 {
		t.Errorf("second Sweep = %+v, %v; want nothing more pruned", res, err)
	}
	if _, err := w.st.Claim(ctx, store.RotationRequest{InstanceID: "shares", RotationID: "rot-shares"}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.SavePending(ctx, "shares", "rot-shares", "cred-1", config("back-secret")); !errors.Is(err, store.ErrConfigLiveElsewhere) {
		t.Errorf("back's live config minted for shares: %v, want ErrConfigLiveElsewhere", err)
	}
}
