package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestFleetRotation rotates 200 instances (V3 and V1, some in Private
// Spaces) through the real worker and checks the invariants of docs/design.md at the
// end: each Heroku config holds the instance's current credential (I1), no
// old credential was revoked before its revoke_at or while a config or a
// dyno held it (I2), every old credential, the provisioning ones included,
// is revoked (I3), and each rotation cost one Heroku call.
func TestFleetRotation(t *testing.T) {
	t.Parallel()
	const n = 200
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(n, sandbox.Mix{V1Every: 5, PrivateEvery: 4})
	w.startWorker(workerParams{concurrency: 20})
	oauthBefore := herokuCalls(w.sb.Fake, herokufake.OAuthToken)

	start := time.Now()
	ids := make([]string, n)
	for i, s := range samples {
		ids[i] = s.ID
	}
	res := w.rotate(ids...)
	if res.Enqueued != n {
		t.Fatalf("enqueued %d rotations, want %d", res.Enqueued, n)
	}
	b := w.waitBatch(res.BatchID, time.Minute)
	rotated := time.Since(start)
	w.waitRevoked(time.Minute)
	revoked := time.Since(start)
	if b.Succeeded != n || b.Failed != 0 {
		t.Fatalf("batch: %d succeeded, %d failed (%v); want all %d", b.Succeeded, b.Failed, b.Failures, n)
	}

	var v1, private int
	var maxLag time.Duration
	for _, s := range samples {
		maxLag = max(maxLag, checkRotated(t, w, s))
		if s.APIVersion == store.APIv1 {
			v1++
		}
		if s.PrivateSpace {
			private++
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("%d invariant violations at revocation, first: %s", len(v), v[0])
	}
	if st := w.sb.Demo.Stats(); st.Revoked != n {
		t.Errorf("issuer revoked %d credentials, want the %d provisioning ones", st.Revoked, n)
	}
	if pending, _ := w.store.PendingRevocations(ctx); pending != 0 {
		t.Errorf("%d credentials still wait for revocation", pending)
	}

	calls := herokuCalls(w.sb.Fake, herokufake.PatchConfig, herokufake.V1Put)
	oauth := herokuCalls(w.sb.Fake, herokufake.OAuthToken) - oauthBefore
	if calls != n || oauth != 0 {
		t.Errorf("Heroku calls: %d config writes and %d token calls for %d rotations; want one write each and no token call", calls, oauth, n)
	}
	t.Logf("%d instances (%d V3, %d V1, %d in Private Spaces): all rotated in %s, all old credentials revoked in %s (grace %s, %s in Private Spaces)",
		n, n-v1, v1, private, rotated.Round(time.Millisecond), revoked.Round(time.Millisecond), testGrace, testPrivateGrace)
	t.Logf("Heroku calls per rotation: %.2f (%d config writes, %d OAuth token calls); %d revocations checked, at most %s after revoke_at",
		float64(calls)/float64(b.Succeeded), calls, oauth, w.sb.Checker.Checked(), maxLag.Round(time.Millisecond))
}

// checkRotated checks one instance after its rotation and revocation, and
// returns how long after its revoke_at the old credential was revoked.
func checkRotated(t *testing.T, w *world, s sandbox.Sample) time.Duration {
	t.Helper()
	ctx := context.Background()
	in, err := w.store.Instance(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	held, ok := w.sb.Demo.Lookup(w.sb.Fake.Config(s.ID)[issuer.DefaultConfigVar])
	switch {
	case !ok:
		t.Errorf("%s: Heroku config holds no credential the issuer minted", s.ID)
	case held != in.CurrentCredential || held == s.Provisioned:
		t.Errorf("%s: Heroku holds %s, store's current is %s, provisioned was %s", s.ID, held, in.CurrentCredential, s.Provisioned)
	case !w.sb.Demo.Valid(held):
		t.Errorf("%s: the credential in Heroku's config is revoked (I1)", s.ID)
	}
	if w.sb.Demo.Valid(s.Provisioned) {
		t.Errorf("%s: provisioning credential %s never revoked (I3)", s.ID, s.Provisioned)
	}
	old, err := w.store.Credential(ctx, s.ID, s.Provisioned)
	if err != nil {
		t.Fatal(err)
	}
	at, _ := w.sb.Demo.RevokedAt(s.Provisioned)
	if old.State != store.CredentialRevoked || at.Before(old.RevokeAt) {
		t.Errorf("%s: old credential %s, revoked at %s, revoke_at %s (I2)", s.ID, old.State, at, old.RevokeAt)
	}
	if n := w.sb.Fake.ConfigChanges(s.ID); n != 1 {
		t.Errorf("%s: %d config changes on Heroku, want 1", s.ID, n)
	}
	return at.Sub(old.RevokeAt)
}
