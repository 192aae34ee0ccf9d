package handlers_test

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
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

func TestRotatePublishesPromotesAndSchedulesRevoke(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")

	if err := g.run(rotateTask(t, "inst-1", "rot_a")); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	in, err := g.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := g.configCredential(t, "inst-1"); got != in.CurrentCredential || got == before.CurrentCredential {
		t.Errorf("Heroku holds %s; store's current is %s, provisioned was %s", got, in.CurrentCredential, before.CurrentCredential)
	}
	old, err := g.st.Credential(ctx, "inst-1", before.CurrentCredential)
	if err != nil {
		t.Fatal(err)
	}
	if old.State != store.CredentialPrevious || old.RevokeAt.Sub(time.Now()) < grace-time.Minute {
		t.Errorf("old credential: state %s, revoke in %s; want previous, revoke in about %s", old.State, time.Until(old.RevokeAt), grace)
	}
	if g.enq.get(tasks.RevokeTaskID("inst-1", old.ID)) == nil {
		t.Error("no revoke task scheduled for the old credential")
	}
	if n := g.fake.ConfigChanges("inst-1"); n != 1 {
		t.Errorf("Heroku config changes: %d, want 1", n)
	}
	if !g.demo.Valid(old.ID) {
		t.Error("old credential revoked during the rotation (I2)")
	}
}

// A rotation's task may run again after it finished, or twice at once
// (docs/design.md, I6): the result is one credential, one config change, one
// promotion.
func TestRotateIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func(g *rig, task *asynq.Task) []error
	}{
		{"twice in a row", func(g *rig, task *asynq.Task) []error {
			return []error{g.run(task), g.run(task)}
		}},
		{"twice at once", func(g *rig, task *asynq.Task) []error {
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = g.run(task) }()
			}
			wg.Wait()
			return errs
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			for _, err := range tc.run(g, rotateTask(t, "inst-1", "rot_b")) {
				if err != nil {
					t.Errorf("run: %v", err)
				}
			}
			if n := g.demo.Stats().MintedPerRotation["rot_b"]; n != 1 {
				t.Errorf("credentials minted for the rotation: %d, want 1", n)
			}
			if n := g.fake.ConfigChanges("inst-1"); n != 1 {
				t.Errorf("Heroku config changes: %d, want 1", n)
			}
			rot, err := g.st.Rotation(context.Background(), "rot_b")
			if err != nil || rot.State != store.RotationPromoted {
				t.Errorf("rotation: %+v, %v; want promoted", rot, err)
			}
			if n := g.enq.count(); n != 1 {
				t.Errorf("tasks enqueued: %d, want the one revoke", n)
			}
		})
	}
}

// A run that resumes a minted rotation finds its pending credential gone
// when another run promoted it meanwhile: it ends without error, leaving
// the rotation promoted once.
func TestRotateResumedAfterAnotherRunPromoted(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	task := rotateTask(t, "inst-1", "rot_f")
	// An earlier run claimed and minted, then stopped (a crash, a timeout).
	if _, err := g.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_f"}); err != nil {
		t.Fatal(err)
	}
	cred, err := g.demo.Mint(ctx, "inst-1", "rot_f")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.st.SavePending(ctx, "inst-1", "rot_f", cred.ID, cred.Config); err != nil {
		t.Fatal(err)
	}
	// Two runs resume it; the second finishes the rotation while the first
	// is about to read the pending credential.
	var other error
	g.deps.Store = &racingStore{Store: g.st, before: func() { other = g.run(task) }}
	if err := g.run(task); err != nil {
		t.Errorf("run that found the rotation finished: %v", err)
	}
	if other != nil {
		t.Errorf("run that finished the rotation: %v", other)
	}
	rot, _ := g.st.Rotation(ctx, "rot_f")
	if rot.State != store.RotationPromoted || g.fake.ConfigChanges("inst-1") != 1 {
		t.Errorf("rotation %s with %d config changes; want promoted with 1", rot.State, g.fake.ConfigChanges("inst-1"))
	}
}

// racingStore runs before just ahead of the first PendingConfig; before may
// itself read pending configs, which go straight to the store.
type racingStore struct {
	*store.Store
	started atomic.Bool
	before  func()
}

var _ handlers.Store = (*racingStore)(nil)

func (s *racingStore) PendingConfig(ctx context.Context, instanceID, credID string) (map[string]secret.String, error) {
	if s.started.CompareAndSwap(false, true) {
		s.before()
	}
	return s.Store.PendingConfig(ctx, instanceID, credID)
}

func TestRotateArchivesUndecodablePayload(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	err := g.run(asynq.NewTask(tasks.TypeRotate, []byte("{not json")))
	if !isPermanent(err) || !errors.Is(err, tasks.ErrInvalidPayload) {
		t.Fatalf("err = %v, want a permanent ErrInvalidPayload", err)
	}
	if s := g.demo.Stats(); s.MintCalls != 1 { // the provisioning mint only
		t.Errorf("issuer mint calls: %d, want none for a bad payload", s.MintCalls-1)
	}
}

func TestRotateUnknownInstanceIsPermanent(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	err := g.run(rotateTask(t, "no-such-instance", "rot_c"))
	if !isPermanent(err) || !strings.Contains(err.Error(), "no-such-instance is not registered") {
		t.Fatalf("err = %v, want a permanent error naming the instance", err)
	}
}

// A 429 from Heroku asks asynq to come back later without counting a
// failure; the pending credential is kept and pushed on the next run.
func TestRotateRateLimitedWaitsWithoutFailing(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(429))
	task := rotateTask(t, "inst-1", "rot_d")

	err := g.run(task)
	var later *handlers.RetryLaterError
	if !errors.As(err, &later) || handlers.IsFailure(err) {
		t.Fatalf("err = %v, want a RetryLaterError that is no failure", err)
	}
	if d := handlers.RetryDelay(0, err, task); d < later.After || d > later.After+later.After/10+time.Millisecond {
		t.Errorf("retry delay %s, want %s plus at most 10%% jitter", d, later.After)
	}
	rot, _ := g.st.Rotation(context.Background(), "rot_d")
	if rot.State != store.RotationMinted {
		t.Errorf("rotation state after 429: %s, want minted", rot.State)
	}
	if err := g.run(task); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if n := g.demo.Stats().MintedPerRotation["rot_d"]; n != 1 {
		t.Errorf("credentials minted: %d, want 1", n)
	}
}

// A Heroku 404 for an add-on Heroku confirms deprovisioned (GET
// /addons/{id}): the pending credential is discarded and queued for
// revocation at once (the add-on's config left its apps), the current one
// is kept, the failure is recorded, and the instance is quarantined with
// the reason, never deprovisioned: its registration and tokens stay.
func TestRotateAddonGoneDiscardsPendingAndQuarantines(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")
	g.fake.Deprovision("inst-1")

	err := g.run(rotateTask(t, "inst-1", "rot_e"))
	if !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot_e")
	pending, err := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if err != nil || pending.State != store.CredentialDiscarded {
		t.Fatalf("pending credential: %+v, %v; want discarded", pending, err)
	}
	if g.enq.get(tasks.RevokeTaskID("inst-1", pending.ID)) == nil {
		t.Error("discarded credential not queued for revocation")
	}
	in, _ := g.st.Instance(ctx, "inst-1")
	if in.CurrentCredential != before.CurrentCredential || in.Deprovisioned() || !strings.Contains(in.LastError, "not_found") {
		t.Errorf("instance after 404: current %s (want %s), deprovisioned %v (want false), last error %q",
			in.CurrentCredential, before.CurrentCredential, in.Deprovisioned(), in.LastError)
	}
	if !in.Quarantined() || !strings.Contains(in.QuarantineReason, "deprovisioned") {
		t.Errorf("instance quarantined at %v for %q; want quarantined because Heroku reports it deprovisioned", in.QuarantinedAt, in.QuarantineReason)
	}
	if _, err := g.st.LoadToken(ctx, "inst-1"); err != nil {
		t.Errorf("tokens after 404: %v; want them kept", err)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	task := asynq.NewTask(tasks.TypeRotate, nil)
	later := &handlers.RetryLaterError{After: 2 * time.Second, Reason: "waiting"}
	for range 20 {
		if d := handlers.RetryDelay(3, later, task); d < 2*time.Second || d > 2200*time.Millisecond {
			t.Fatalf("RetryLaterError delay %s, want 2s to 2.2s", d)
		}
	}
	// The first failures are retried within seconds, then asynq backs off
	// (docs/design.md, "Retries of transient failures").
	if d := handlers.RetryDelay(0, errors.New("boom"), task); d < time.Second || d > 2*time.Second {
		t.Errorf("first failure delay %s, want a fast retry of 1s to 2s", d)
	}
	if d := handlers.RetryDelay(retry.FastRetries, errors.New("boom"), task); d < 15*time.Second {
		t.Errorf("failure delay after the fast retries %s, want asynq's back-off (at least 15s)", d)
	}
	if handlers.IsFailure(later) || !handlers.IsFailure(errors.New("boom")) {
		t.Error("IsFailure: waiting must not count, an error must")
	}
	if d := handlers.RetryDelay(5, asynq.ErrLeaseExpired, task); d > 2*time.Second {
		t.Errorf("a task whose worker died waits %s, want about a second", d)
	}
	if handlers.IsFailure(asynq.ErrLeaseExpired) {
		t.Error("IsFailure: a worker that died is not the task's failure")
	}
}
