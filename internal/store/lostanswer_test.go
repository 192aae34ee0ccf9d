package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// lostAnswerStore is a store on a private Redis reached through a relay
// that can cut a command's answer after Redis ran it, with go-redis
// configured as rekey's REDIS_URL leaves it (its own retries of a command
// whose connection broke).
func lostAnswerStore(t *testing.T) (*store.Store, *redistest.Relay, *redistest.Redis) {
	t.Helper()
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	relay := redistest.NewRelay(t, r.Addr)
	opt, err := redis.ParseURL("redis://" + relay.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return store.New(c, sealer, store.WithClock(func() time.Time { return now })), relay, r
}

// A rotation's first push went unanswered (a 5xx Heroku may still apply),
// its second was refused; the refusal's settle ran in Redis but its answer
// was lost, and go-redis sent it again. The unanswered push must stay
// unsettled: a read-back showing none of the credential then proves
// nothing, and the credential is kept unconfirmed, not discarded and
// revoked while the first push may still land (I1).
func TestASettleWhoseAnswerWasLostSettlesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, relay, r := lostAnswerStore(t)
	pushedTwice(t, st) // the unanswered push, then the refused one
	// Another rotation's settle loads the script, so that the cut meets
	// the EVALSHA that runs it rather than a NOSCRIPT.
	if err := st.SettlePush(ctx, "rot-none", 1); err != nil {
		t.Fatal(err)
	}
	relay.CutAnswerOf("rekey:rotation:rot-1")
	if err := st.SettlePush(ctx, "rot-1", 1); err != nil {
		t.Fatalf("settle: %v", err)
	}
	attempts, settled, err := st.PushAttempts(ctx, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || settled != 1 {
		t.Errorf("after one refused push of two: attempts %d, settled %d; want 2 and 1 (%s)",
			attempts, settled, r.Client.HGet(ctx, "rekey:rotation:rot-1", "push_settled").Val())
	}
	f, err := st.FailRotation(ctx, "inst-1", "rot-1", store.Failure{Code: "push:refused", Cause: "push refused",
		NotHeld: attempts == settled, Attempts: attempts})
	if err != nil {
		t.Fatal(err)
	}
	if f.Discarded != nil || f.Unconfirmed != "cred-1" {
		t.Fatalf("failed after a push still unanswered: discarded %v, unconfirmed %q; want cred-1 kept unconfirmed",
			f.Discarded, f.Unconfirmed)
	}
}

// A promotion after a landed push and an earlier one left unanswered ran in
// Redis, its answer lost, and go-redis sent it again: the unanswered push
// stays unsettled, so that the next promotion within the hour sets the
// credential aside as unconfirmed rather than revoking it after the grace
// while that push may still put it back (I1).
func TestAPromotionWhoseAnswerWasLostSettlesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, relay, _ := lostAnswerStore(t)
	pushedTwice(t, st) // the unanswered push, then the one that landed
	if _, err := st.PromotePushed(ctx, "inst-none", "rot-none", "cred-none", time.Hour, "", 1); err == nil {
		t.Fatal("promotion of no rotation succeeded") // it loads the script
	}
	relay.CutAnswerOf("rekey:rotation:rot-1")
	if _, err := st.PromotePushed(ctx, "inst-1", "rot-1", "cred-1", time.Hour, "grace 1h0m0s", 1); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if attempts, settled, err := st.PushAttempts(ctx, "rot-1"); err != nil || attempts != 2 || settled != 1 {
		t.Fatalf("after one landed push of two: attempts %d, settled %d (%v); want 2 and 1", attempts, settled, err)
	}
	c2 := mustClaim(t, st, "inst-1", "rot-2")
	other := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:0th3r@db/1")}
	if err := st.SavePending(ctx, "inst-1", "rot-2", "cred-2", other); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkPushAttempt(ctx, "rot-2", c2.Instance.Target()); err != nil {
		t.Fatal(err)
	}
	p, err := st.PromotePushed(ctx, "inst-1", "rot-2", "cred-2", time.Hour, "grace 1h0m0s", 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Previous != nil {
		t.Fatalf("cred-1, its first push unanswered, made previous and due at %v; want it kept unconfirmed", p.Previous.RevokeAt)
	}
}

// A discarded credential's revocation met a mint that answered it again
// (reminted_at): its record answered "again", due at once, but that
// answer was lost and go-redis sent the record again. The repeat must
// not record revoked a credential the mint may have made anew at the
// issuer: nothing would revoke it then (I3).
func TestARevocationRecordAnsweredAgainWhoseAnswerWasLostStaysDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, relay, _ := lostAnswerStore(t)
	err := st.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"})
	if err != nil {
		t.Fatal(err)
	}
	mustClaim(t, st, "inst-1", "rot-1")
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:s3cr3t@db/1")}
	if err := st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	f, err := st.FailRotation(ctx, "inst-1", "rot-1", store.Failure{Code: "verify:refused", Cause: "verify refused", NotHeld: true})
	if err != nil || f.Discarded == nil {
		t.Fatalf("fail: %+v, %v; want cred-1 discarded", f, err)
	}
	// A late run's mint answers the credential again while its revocation runs.
	if err := st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	// Another credential's record loads the script, so that the cut meets
	// the EVALSHA that runs it rather than a NOSCRIPT.
	if err := st.MarkRevoked(ctx, "inst-1", "cred-none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("mark revoked of no credential: %v", err)
	}
	relay.CutAnswerOf("rekey:cred:inst-1:cred-1")
	if err := st.MarkRevoked(ctx, "inst-1", "cred-1"); !errors.Is(err, store.ErrMintedAgain) {
		t.Fatalf("mark revoked = %v, want ErrMintedAgain", err)
	}
	c, err := st.Credential(ctx, "inst-1", "cred-1")
	if err != nil {
		t.Fatal(err)
	}
	due, err := st.DueRevocations(ctx, time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !c.RevokedAt.IsZero() || len(due) != 1 {
		t.Fatalf("credential minted again during its revocation: revoked at %v, %d revocations due; want it due again",
			c.RevokedAt, len(due))
	}
}

// pushedTwice registers inst-1 with current credential cred-0, claims its
// rotation rot-1, saves cred-1 for it and records two push attempts of it.
func pushedTwice(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	err := st.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"})
	if err != nil {
		t.Fatal(err)
	}
	c := mustClaim(t, st, "inst-1", "rot-1")
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:s3cr3t@db/1")}
	if err := st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.MarkPushAttempt(ctx, "rot-1", c.Instance.Target()); err != nil {
			t.Fatal(err)
		}
	}
}
