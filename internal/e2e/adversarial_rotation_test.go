package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// The adversarial rotation suite of issue 8: an issuer and a Heroku that
// misbehave, played over real HTTP against the in-process worker, real
// Redis and rekey's own clients. Each test names the case it covers.

// Case 1: an issuer that returns a partial (or padded) config is refused
// before any push: nothing reaches Heroku, the current credential stays,
// the minted one is discarded and revoked, and the failure names the vars.
func TestAdversarialPartialConfigIsNeverPushed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var padded atomic.Value // the instance whose issuer adds a var, once provisioned
	padded.Store("")
	w := newWorld(t, worldParams{demo: []issuer.DemoOption{issuer.WithConfigVars(func(id string) []string {
		if id == padded.Load().(string) {
			return []string{issuer.DefaultConfigVar, "MYADDON_EXTRA"}
		}
		return []string{issuer.DefaultConfigVar}
	})}})
	samples := w.provision(2, sandbox.Mix{})
	missing, extra := samples[0], samples[1]
	padded.Store(extra.ID)
	// The partner registered two vars; its issuer mints only one.
	if err := w.store.PutInstance(ctx, store.Registration{ID: missing.ID, APIVersion: store.APIv3,
		ConfigVars: []string{issuer.DefaultConfigVar, "MYADDON_PASSWORD"}}); err != nil {
		t.Fatal(err)
	}
	w.startWorker(workerParams{retryDelay: fastRetry})

	res := w.rotate(missing.ID, extra.ID)
	b := w.waitBatch(res.BatchID, 30*time.Second)
	w.waitRevoked(15 * time.Second)
	if b.Failed != 2 || b.Failures["mint:config_mismatch"] != 2 {
		t.Fatalf("batch: %d failed by %v; want 2 by mint:config_mismatch", b.Failed, b.Failures)
	}
	want := map[string]string{missing.ID: "missing MYADDON_PASSWORD", extra.ID: `extra "MYADDON_EXTRA"`}
	for i, s := range samples {
		rot, _ := w.store.Rotation(ctx, res.Items[i].RotationID)
		in, _ := w.store.Instance(ctx, s.ID)
		c, err := w.store.Credential(ctx, s.ID, rot.CredentialID)
		switch {
		case w.sb.Fake.ConfigWrites(s.ID) != 0:
			t.Errorf("%s: Heroku config written %d times, want never", s.ID, w.sb.Fake.ConfigWrites(s.ID))
		case in.CurrentCredential != s.Provisioned || !w.sb.Demo.Valid(s.Provisioned):
			t.Errorf("%s: current %s (valid %v), want the provisioned %s kept", s.ID, in.CurrentCredential, w.sb.Demo.Valid(s.Provisioned), s.Provisioned)
		case err != nil || c.State != store.CredentialDiscarded || !c.Revoked() || w.sb.Demo.Valid(c.ID):
			t.Errorf("%s: minted credential %+v (%v); want discarded and revoked", s.ID, c, err)
		case !strings.Contains(rot.Error, want[s.ID]) || !strings.Contains(in.LastError, want[s.ID]):
			t.Errorf("%s: failure %q, last error %q; want them to name %s", s.ID, rot.Error, in.LastError, want[s.ID])
		}
	}
	if n := herokuCalls(w.sb.Fake, herokufake.PatchConfig, herokufake.V1Put); n != 0 {
		t.Errorf("%d config pushes reached Heroku, want none", n)
	}
	t.Logf("partial and padded configs: 2 rotations refused by mint:config_mismatch, 0 pushes, 2 minted credentials revoked")
}

// Case 2: Heroku error bodies that echo the values rekey sent (a 503 that
// is retried, a 422 that ends the rotation, on V3 and V1) leave no value,
// nor any of Heroku's message, in the tasks' last errors, the audit
// events, the instances' last errors, the worker's log or Redis.
func TestAdversarialEchoedValuesAreFoundNowhere(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(4, sandbox.Mix{V1Every: 4})
	watched := &watchedIssuer{}
	rw := w.startWorker(workerParams{logLevel: "debug", retryDelay: fastRetry,
		wrapIssuer: func(i issuer.Issuer) issuer.Issuer { watched.Issuer = i; return watched }})
	w.sb.Fake.Script(herokufake.PatchConfig, herokufake.Echo(503), herokufake.Echo(422))
	w.sb.Fake.Script(herokufake.V1Put, herokufake.Echo(422))

	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.ID
	}
	res := w.rotate(ids...)
	b := w.waitBatch(res.BatchID, 30*time.Second)
	w.waitRevoked(15 * time.Second)
	if b.Succeeded != 2 || b.Failures["push:invalid_params"] != 2 {
		t.Fatalf("batch: %d succeeded, failures %v; want 2 and 2 push:invalid_params", b.Succeeded, b.Failures)
	}
	secrets := newSecretSet()
	for _, c := range watched.credentials() {
		secrets.addCredential("minted credential "+c.ID, c)
	}
	places := map[string]string{
		"worker log":                             rw.log.String(),
		"tasks (payloads, results, errors)":      w.taskText(),
		"store (last errors, rotations, events)": w.storeText(ids, res.Items),
		"Redis":                                  redistest.Dump(t, w.redis),
	}
	// The push's refusal is kept by its status and Heroku's id; Heroku's
	// message, which may quote what no scrubber knows, is kept nowhere.
	for _, place := range []string{"tasks (payloads, results, errors)", "store (last errors, rotations, events)"} {
		if !strings.Contains(places[place], "status 422 invalid_params") {
			t.Errorf("%s lacks the refused push: the capture is broken", place)
		}
	}
	for place, text := range places {
		if strings.Contains(text, "Config rejected") {
			t.Errorf("%s keeps Heroku's message to a refused push", place)
		}
	}
	leaks := 0
	for _, s := range secrets.list {
		for place, text := range places {
			if strings.Contains(text, s.value) {
				leaks++
				t.Errorf("%s found in %s", s.label, place)
			}
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
	t.Logf("%d pushed values echoed by Heroku, searched in %d places: %d leaks", len(secrets.list), len(places), leaks)
}

// Case 3: a burst of 403s on pushes, some with the read-back and the
// add-on check refused too (an account-level refusal), deprovisions
// nothing and quarantines nothing: every instance stays registered with its
// tokens, no credential Heroku may hold is revoked, and once Heroku answers
// again every instance rotates, the unconfirmed credentials with them.
func TestAdversarialForbiddenBurstLeavesEveryInstanceRotatable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(6, sandbox.Mix{})
	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.ID
	}
	w.startWorker(workerParams{retryDelay: fastRetry})
	forbidden := herokufake.Respond(403)
	w.sb.Fake.Script(herokufake.PatchConfig, forbidden, forbidden, forbidden)
	w.sb.Fake.Script(herokufake.GetConfig, forbidden, forbidden)
	w.sb.Fake.Script(herokufake.GetAddon, forbidden, forbidden)

	first := w.waitBatch(w.rotate(ids...).BatchID, 30*time.Second)
	if first.Failed != 3 || first.Succeeded != 3 || first.Failures["push:forbidden"] != 3 {
		t.Fatalf("first wave: %+v; want 3 failed by push:forbidden, 3 succeeded", first)
	}
	unconfirmed := 0
	for _, s := range samples {
		in, _ := w.store.Instance(ctx, s.ID)
		if _, err := w.store.LoadToken(ctx, s.ID); err != nil || in.Deprovisioned() || in.Quarantined() {
			t.Errorf("%s after the 403s: tokens %v, deprovisioned %v, quarantined %v (%s); want kept, live, not set aside",
				s.ID, err, in.Deprovisioned(), in.Quarantined(), in.QuarantineReason)
		}
		unconfirmed += instanceEvents(t, w, s.ID, store.EventPushUnknown)
	}
	second := w.waitBatch(w.rotate(ids...).BatchID, 30*time.Second)
	if second.Succeeded != 6 {
		t.Fatalf("second wave: %+v; want every instance rotated", second)
	}
	w.waitRevoked(20 * time.Second)
	for _, s := range samples {
		in, _ := w.store.Instance(ctx, s.ID)
		held, _ := w.sb.Demo.Lookup(w.sb.Fake.Config(s.ID)[issuer.DefaultConfigVar])
		if held != in.CurrentCredential || !w.sb.Demo.Valid(held) || w.sb.Demo.Valid(s.Provisioned) {
			t.Errorf("%s: Heroku holds %s (valid %v), current is %s, provisioned %s valid %v; want the current held and live, the provisioned revoked",
				s.ID, held, w.sb.Demo.Valid(held), in.CurrentCredential, s.Provisioned, w.sb.Demo.Valid(s.Provisioned))
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
	t.Logf("3 pushes refused with 403 (%d with no read-back, kept unconfirmed): 0 deprovisioned, 0 quarantined; the next wave rotated 6 of 6 and revoked every old credential, %d revocations checked",
		unconfirmed, w.sb.Checker.Checked())
}

// Case 3: a 404 for an add-on really deprovisioned at Heroku quarantines
// the instance with the reason, discards and revokes the pending credential
// (the add-on's config left its apps), and deprovisions nothing: the
// partner's DELETE does that, and a later registration works.
func TestAdversarialGoneAddonIsQuarantinedNotDeprovisioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	w.startWorker(workerParams{retryDelay: fastRetry})
	w.sb.Fake.Deprovision(s.ID)

	res := w.rotate(s.ID)
	b := w.waitBatch(res.BatchID, 30*time.Second)
	w.waitRevoked(15 * time.Second)
	in, _ := w.store.Instance(ctx, s.ID)
	rot, _ := w.store.Rotation(ctx, res.Items[0].RotationID)
	c, _ := w.store.Credential(ctx, s.ID, rot.CredentialID)
	if b.Failures["push:not_found"] != 1 || c.State != store.CredentialDiscarded || !c.Revoked() {
		t.Errorf("batch failures %v, pending %+v; want push:not_found, discarded and revoked", b.Failures, c)
	}
	if in.Deprovisioned() || !in.Quarantined() || !strings.Contains(in.QuarantineReason, "deprovisioned") {
		t.Errorf("instance: deprovisioned %v, quarantined %v (%q); want quarantined because Heroku reports it deprovisioned, not deprovisioned",
			in.Deprovisioned(), in.Quarantined(), in.QuarantineReason)
	}
	if _, err := w.store.LoadToken(ctx, s.ID); err != nil {
		t.Errorf("tokens: %v, want kept", err)
	}
	if n := herokuCalls(w.sb.Fake, herokufake.GetAddon); n != 1 {
		t.Errorf("GET /addons/{id} calls: %d, want 1", n)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
	t.Logf("404 on a deprovisioned add-on: quarantined (%q), registration and tokens kept", in.QuarantineReason)
}

// Case 6: a rotation that can never push ends instead of living for ever:
// one whose stored token cannot be opened, one whose instance the partner
// deprovisioned between the claim and the push. Neither records a push;
// both discard and revoke their credential; the first quarantines its
// instance with the reason; a new request starts a new rotation.
func TestAdversarialDeadRotationEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(2, sandbox.Mix{})
	broken, dropped := samples[0], samples[1]
	if err := w.redis.Client.Set(ctx, "rekey:oauth:"+broken.ID, "v1.sealed-under-a-dropped-key", 0).Err(); err != nil {
		t.Fatal(err)
	}
	w.startWorker(workerParams{retryDelay: fastRetry, sweep: true,
		wrapIssuer: func(i issuer.Issuer) issuer.Issuer {
			return &deprovisionOnMint{Issuer: i, st: w.store, id: dropped.ID}
		}})

	res := w.rotate(broken.ID, dropped.ID)
	for _, it := range res.Items {
		info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(it.RotationID), 30*time.Second)
		if info.State != asynq.TaskStateArchived || info.Retried != 0 {
			t.Errorf("%s: task %s after %d retries (%q); want archived at once", it.InstanceID, info.State, info.Retried, info.LastErr)
		}
		rot, _ := w.store.Rotation(ctx, it.RotationID)
		if rot.State != store.RotationFailed || rot.PushAttempted {
			t.Errorf("%s: rotation %s, push attempted %v; want failed with no push", it.InstanceID, rot.State, rot.PushAttempted)
		}
	}
	w.waitRevoked(15 * time.Second)
	if n := herokuCalls(w.sb.Fake, herokufake.PatchConfig); n != 0 {
		t.Errorf("%d pushes reached Heroku, want none", n)
	}
	in, _ := w.store.Instance(ctx, broken.ID)
	if !in.Quarantined() || !strings.Contains(in.QuarantineReason, "REKEY_ENCRYPTION_KEYS") || in.InFlight != "" {
		t.Errorf("broken instance: quarantined %v (%q), in flight %q; want quarantined naming REKEY_ENCRYPTION_KEYS, nothing in flight",
			in.Quarantined(), in.QuarantineReason, in.InFlight)
	}
	again := w.rotate(broken.ID)
	if again.Enqueued != 1 || again.Joined != 0 || again.Items[0].RotationID == res.Items[0].RotationID {
		t.Errorf("new request: %+v; want a new rotation, not a join", again)
	}
	t.Logf("dead rotations: 2 ended at once (archived, 0 retries, 0 pushes), their credentials revoked; a new request started rotation %s", again.Items[0].RotationID)
}

// deprovisionOnMint deprovisions one instance (the partner's DELETE) right
// after its credential is minted: between the claim and the push.
type deprovisionOnMint struct {
	issuer.Issuer
	st *store.Store
	id string
}

func (d *deprovisionOnMint) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := d.Issuer.Mint(ctx, instanceID, rotationID)
	if err == nil && instanceID == d.id {
		err = d.st.Deprovision(ctx, instanceID)
	}
	return c, err
}

// Case 9: two runs of one rotation at once. Run A is held in verify; run B
// pushes, Heroku applies the push but B never hears back, and only then
// does A's verify fail for good. A's view (no push attempted) is stale: the
// store refuses to discard the credential Heroku holds, keeps it
// unconfirmed, and it is never revoked while Heroku holds it (I1). The next
// rotation replaces it on Heroku; once B's unanswered push is older than
// the window in which Heroku might still apply it (a second here, an hour
// in production), it is revoked after its grace (I3).
func TestAdversarialConcurrentRunsNeverDiscardAPushedCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	release := make(chan struct{})
	var verifies atomic.Int64
	const window = time.Second
	w := newWorld(t, worldParams{demo: []issuer.DemoOption{issuer.WithVerifyFault(func(string, string) error {
		if verifies.Add(1) != 1 {
			return nil
		}
		<-release
		return &issuer.Error{Op: "verify", Status: 422}
	})}, store: []store.Option{store.WithUnansweredPushWindow(window)}})
	s := w.provision(1, sandbox.Mix{})[0]
	rotationID := tasks.NewID("rot")
	lost := &lostAnswer{release: release, st: w.store, rotationID: rotationID}
	w.startWorker(workerParams{retryDelay: fastRetry,
		wrapHeroku: func(h handlers.Heroku) handlers.Heroku { lost.Heroku = h; return lost }})
	if _, err := w.store.Claim(ctx, store.RotationRequest{InstanceID: s.ID, RotationID: rotationID, Queue: tasks.QueueDefault}); err != nil {
		t.Fatal(err)
	}
	for _, taskID := range []string{"run-a", "run-b"} {
		task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: s.ID, RotationID: rotationID}, asynq.TaskID(taskID))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.queue.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	for _, taskID := range []string{"run-a", "run-b"} {
		w.waitTask(tasks.QueueDefault, taskID, 30*time.Second)
	}
	rot, _ := w.store.Rotation(ctx, rotationID)
	c, _ := w.store.Credential(ctx, s.ID, rot.CredentialID)
	held, _ := w.sb.Demo.Lookup(w.sb.Fake.Config(s.ID)[issuer.DefaultConfigVar])
	if rot.State != store.RotationFailed || held != c.ID || c.State != store.CredentialUnconfirmed || !w.sb.Demo.Valid(c.ID) {
		t.Fatalf("rotation %s; Heroku holds %s; its credential %s is %s (valid %v); want failed, held, unconfirmed and valid",
			rot.State, held, c.ID, c.State, w.sb.Demo.Valid(c.ID))
	}
	time.Sleep(window) // B's push can no longer land
	res := w.rotate(s.ID)
	w.waitBatch(res.BatchID, 30*time.Second)
	w.waitRevoked(20 * time.Second)
	if c, _ = w.store.Credential(ctx, s.ID, c.ID); !c.Revoked() {
		t.Errorf("the unconfirmed credential after the next rotation: %+v, want revoked after its grace", c)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
	t.Logf("stale run failed the rotation after another run's push landed: credential %s kept unconfirmed, then revoked after the next rotation replaced it (%d revocations checked)",
		c.ID, w.sb.Checker.Checked())
}

// lostAnswer lets the first push through to Heroku, then lets the held run
// go and waits until it has failed the rotation, then reports the push as
// lost on the way back (no answer): the push's outcome is unknown to its
// run, though Heroku applied it.
type lostAnswer struct {
	handlers.Heroku
	release    chan struct{}
	st         *store.Store
	rotationID string
	once       sync.Once
}

func (l *lostAnswer) UpdateConfig(ctx context.Context, t heroku.Target, vars []heroku.ConfigVar) error {
	err := l.Heroku.UpdateConfig(ctx, t, vars)
	first := false
	l.once.Do(func() { first = true })
	if err != nil || !first {
		return err
	}
	close(l.release)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if rot, _ := l.st.Rotation(ctx, l.rotationID); rot.State == store.RotationFailed {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &heroku.TransportError{Endpoint: heroku.EndpointPatchConfig, Err: errors.New("connection reset by peer")}
}

// instanceEvents counts an instance's audit events of one type.
func instanceEvents(t *testing.T, w *world, id, kind string) int {
	t.Helper()
	events, err := w.store.Events(context.Background(), id, 200)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Type == kind {
			n++
		}
	}
	return n
}

// The customer revoked the add-on's authorization: Heroku answers the push
// 401 and the token's refresh 400 invalid_grant. The rotation fails as a
// refused token, not as a bad request of rekey's, the instance is set
// aside at once with what to do (register it again), rather than failing
// every later rotation the same way, and its credential stays valid.
func TestAdversarialRefreshRefusedSetsTheInstanceAside(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	w.startWorker(workerParams{retryDelay: fastRetry})
	w.sb.Fake.Script(herokufake.PatchConfig, herokufake.Respond(401))
	w.sb.Fake.Script(herokufake.OAuthToken, herokufake.RefuseGrant())

	b := w.waitBatch(w.rotate(s.ID).BatchID, 30*time.Second)
	if b.Failed != 1 || b.Failures["push:token_refused"] != 1 {
		t.Fatalf("batch: %+v; want 1 failed by push:token_refused", b)
	}
	in, err := w.store.Instance(ctx, s.ID)
	if err != nil || !in.Quarantined() || !strings.Contains(in.QuarantineReason, "register it again") ||
		in.CurrentCredential != s.Provisioned {
		t.Errorf("instance after the refused refresh: %+v, %v; want set aside saying to register again, its credential kept", in, err)
	}
	if !w.sb.Demo.Valid(s.Provisioned) {
		t.Error("the current credential stopped working")
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}
