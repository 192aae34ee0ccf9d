package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A rotate task of another app may name a batch rekey never created (its
// own correlation id), and a batch expires after the rotation ttl while a
// credential it superseded may still wait for its revocation. Counting a
// rotation's outcome into such a batch must not create its hash for good:
// a key per rotation that never expires.
func TestCountingIntoAMissingBatchLeavesNoKeyForever(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.register(t, "inst-2", "cred-a")
	cfg := func(v string) map[string]secret.String {
		return map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:" + v + "@db/1")}
	}
	// Promoted, then its superseded credential revoked.
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1", BatchID: "partner-ticket-1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg("Zq8vN3kLp0Xw")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, "inst-1", "rot-1", "cred-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
		t.Fatal(err)
	}
	// Failed.
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-2", RotationID: "rot-2", BatchID: "partner-ticket-2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, "inst-2", "rot-2", "mint:issuer_422", "refused"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"rekey:batch:partner-ticket-1", "rekey:batch:partner-ticket-2"} {
		if ttl := f.r.Client.TTL(ctx, key).Val(); ttl == -1 {
			t.Errorf("%s was created without an expiry", key)
		}
	}
}

// A batch id no batch of rekey's can have (a colon, more than 128 bytes)
// counts into nothing: "bat_x:failures" would otherwise count a rotation's
// outcome into batch bat_x's failures by code.
func TestABatchIDRekeyCannotHaveCountsIntoNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	if err := f.st.CreateBatch(ctx, "bat_x", "wave", 1); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Client.HSet(ctx, "rekey:batch:bat_x:failures", "mint:issuer_422", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1", BatchID: "bat_x:failures"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, "inst-1", "rot-1", "mint:issuer_422", "refused"); err != nil {
		t.Fatal(err)
	}
	got := f.r.Client.HGetAll(ctx, "rekey:batch:bat_x:failures").Val()
	if len(got) != 1 || got["mint:issuer_422"] != "1" {
		t.Errorf("batch bat_x's failures: %v; want only its own count", got)
	}
}
