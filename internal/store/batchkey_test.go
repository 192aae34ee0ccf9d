package store_test

import (
	"context"
	"fmt"
	"strings"
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

// Another app that has a batch id of rekey's (POST /api/v1/rotations
// answers it) can enqueue rotate tasks of its own naming that batch. rekey's
// producers claim every rotation of a batch before its task exists, so a
// task's claim that starts or joins a rotation is such a task: whatever
// becomes of its rotation, the batch's counts and done stay as the batch's
// own rotations make them, and its cancel does not end that rotation.
func TestAForeignTaskNamingABatchDoesNotCountInIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	for _, id := range []string{"inst-own", "inst-x", "inst-y", "inst-z", "inst-other"} {
		f.register(t, id, "cred-0")
	}
	for _, b := range []string{"bat_w", "bat_other"} {
		if err := f.st.CreateBatch(ctx, b, "wave", 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []store.RotationRequest{
		{InstanceID: "inst-own", RotationID: "rot-own", BatchID: "bat_w", Queue: "bulk"},
		{InstanceID: "inst-other", RotationID: "rot-other", BatchID: "bat_other", Queue: "bulk"},
	} {
		if c := f.st.ClaimMany(ctx, []store.RotationRequest{r})[0]; c.Err != nil || c.Claim.Status != store.Claimed {
			t.Fatalf("producer's claim %s: %+v", r.RotationID, c)
		}
		if err := f.st.CountBatch(ctx, r.BatchID, 1, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	before, err := f.st.Batch(ctx, "bat_w")
	if err != nil || before.Done || before.InFlight != 1 {
		t.Fatalf("batch before: %+v, %v; want its one rotation in flight", before, err)
	}

	foreign := func(inst, rot string) store.RotationRequest {
		return store.RotationRequest{InstanceID: inst, RotationID: rot, BatchID: "bat_w", Queue: "default"}
	}
	// Promoted, and the credential it superseded revoked.
	if c, err := f.st.Claim(ctx, foreign("inst-x", "rot-x")); err != nil || c.Status != store.Claimed {
		t.Fatalf("foreign task's claim: %+v, %v; want claimed", c, err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:Zq8vN3kLp0Xw@db/1")}
	if err := f.st.SavePending(ctx, "inst-x", "rot-x", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, "inst-x", "rot-x", "cred-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkRevoked(ctx, "inst-x", "cred-0"); err != nil {
		t.Fatal(err)
	}
	// Failed.
	if _, err := f.st.Claim(ctx, foreign("inst-y", "rot-y")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, "inst-y", "rot-y", "mint:issuer_422", "refused"); err != nil {
		t.Fatal(err)
	}
	// Joined another batch's rotation, which then finished.
	if c, err := f.st.Claim(ctx, foreign("inst-other", "rot-j")); err != nil || c.Status != store.Joined {
		t.Fatalf("foreign task's claim of an instance in flight: %+v, %v; want joined", c, err)
	}
	if b, err := f.st.Batch(ctx, "bat_w"); err != nil || b.InFlight != 1 {
		t.Errorf("batch once a foreign task joined another batch's rotation: %+v, %v; want it not to wait for that", b, err)
	}
	if _, err := f.st.Fail(ctx, "inst-other", "rot-other", "mint:issuer_422", "refused"); err != nil {
		t.Fatal(err)
	}
	// Still requested when the batch is cancelled: its task's retry carries on.
	if _, err := f.st.Claim(ctx, foreign("inst-z", "rot-z")); err != nil {
		t.Fatal(err)
	}
	after, err := f.st.Batch(ctx, "bat_w")
	if err != nil {
		t.Fatal(err)
	}
	if after.Succeeded != 0 || after.Failed != 0 || after.Revoked != 0 || after.InFlight != 1 || after.Done ||
		len(after.Failures) != 0 {
		t.Errorf("batch after the foreign tasks' rotations ended:\n%+v\nwant as before:\n%+v", after, before)
	}
	if r, err := f.st.Rotation(ctx, "rot-x"); err != nil || r.BatchID != "" {
		t.Errorf("foreign task's rotation names batch %q (%v); want none", r.BatchID, err)
	}

	if err := f.st.CancelBatch(ctx, "bat_w"); err != nil {
		t.Fatal(err)
	}
	if c, err := f.st.Claim(ctx, foreign("inst-z", "rot-z")); err != nil || c.Status != store.Resumed {
		t.Errorf("foreign task's retry after the batch's cancel: %+v, %v; want resumed", c, err)
	}
	if b, err := f.st.Batch(ctx, "bat_w"); err != nil || b.Cancelled != 0 || b.InFlight != 1 || b.Done {
		t.Errorf("cancelled batch: %+v, %v; want its own rotation in flight, none cancelled", b, err)
	}
}

// A failed rotation counts its failure code into its batch's failures
// only when the batch exists and its id is one rekey can have: another
// app's correlation id, or an id of a megabyte, leaves no failures key for
// the rotation ttl.
func TestFailureCodesCountOnlyIntoABatchOfRekeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	long := strings.Repeat("b", 1<<20)
	for i, batch := range []string{"partner-ticket-9", "bat_x:z", long} {
		inst, rot := fmt.Sprintf("inst-%d", i), fmt.Sprintf("rot-%d", i)
		f.register(t, inst, "cred-0")
		if _, err := f.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: inst, RotationID: rot, BatchID: batch}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Fail(ctx, inst, rot, "mint:issuer_422", "refused"); err != nil {
			t.Fatal(err)
		}
		if keys := f.r.Client.Keys(ctx, "rekey:batch:*").Val(); len(keys) != 0 {
			t.Errorf("a failure in batch %.20q left %d batch keys; want none", batch, len(keys))
		}
	}
}
