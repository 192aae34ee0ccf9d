package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// failureCase is one way Heroku or the issuer can answer a rotation, and
// how the rotation must end.
type failureCase struct {
	name string
	// demo fails the issuer; fault gets the world before the rotation.
	demo  func(mintCalls *atomic.Int64) issuer.DemoOption
	fault func(w *world, s sandbox.Sample)
	// httpTimeout bounds each Heroku call; 0 means rekey's default.
	httpTimeout time.Duration
	// maxRetry, when positive, replaces the rotate task's default.
	maxRetry int
	// Expected: the task's final state and retries, and for a failed
	// rotation, the failure code the batch reports.
	state     asynq.TaskState
	retried   int
	errorCode string
	// calls are the Heroku calls expected, by endpoint and status.
	calls map[herokufake.CallKey]int
}

// failMint makes the first minting call of a rotation fail with status,
// or every one when always is set. Provisioning mints are let through.
func failMint(status int, always bool) func(*atomic.Int64) issuer.DemoOption {
	return func(calls *atomic.Int64) issuer.DemoOption {
		return issuer.WithMintFault(func(_, rotationID string) error {
			if rotationID == "provision" {
				return nil
			}
			if n := calls.Add(1); n == 1 || always {
				return &issuer.Error{Op: "mint", Status: status, Code: "injected_by_the_test"}
			}
			return nil
		})
	}
}

func script(e herokufake.Endpoint, faults ...herokufake.Fault) func(*world, sandbox.Sample) {
	return func(w *world, _ sandbox.Sample) { w.sb.Fake.Script(e, faults...) }
}

func key(e herokufake.Endpoint, status int) herokufake.CallKey {
	return herokufake.CallKey{Endpoint: e, Status: status}
}

// TestFailureModes runs one rotation per case through the worker against
// Heroku and issuer faults over real HTTP, with asynq's back-off shortened.
func TestFailureModes(t *testing.T) {
	t.Parallel()
	patch := herokufake.PatchConfig
	respond := herokufake.Respond
	for _, tc := range []failureCase{
		{name: "heroku 429 then 200", fault: script(patch, respond(429)),
			state: asynq.TaskStateCompleted, retried: 0,
			calls: map[herokufake.CallKey]int{key(patch, 429): 1, key(patch, 200): 1}},
		// A push answered 5xx, or not at all, is sent again within the run
		// (docs/design.md, "Retries of transient failures").
		{name: "heroku 500 then 200", fault: script(patch, respond(500)),
			state: asynq.TaskStateCompleted, retried: 0,
			calls: map[herokufake.CallKey]int{key(patch, 500): 1, key(patch, 200): 1}},
		{name: "heroku 429, 500, then 200", fault: script(patch, respond(429), respond(500)),
			state: asynq.TaskStateCompleted, retried: 0,
			calls: map[herokufake.CallKey]int{key(patch, 429): 1, key(patch, 500): 1, key(patch, 200): 1}},
		{name: "heroku timeout then 200", fault: script(patch, herokufake.Hang()), httpTimeout: time.Second,
			state: asynq.TaskStateCompleted, retried: 0,
			calls: map[herokufake.CallKey]int{key(patch, 0): 1, key(patch, 200): 1}},
		// Twice in a run, the task goes back to asynq; its next run reads
		// the config back, then pushes.
		{name: "heroku 500 twice then 200", fault: script(patch, respond(500), respond(500)),
			state: asynq.TaskStateCompleted, retried: 1,
			calls: map[herokufake.CallKey]int{key(patch, 500): 2, key(herokufake.GetConfig, 200): 1, key(patch, 200): 1}},
		{name: "expired token 401 refresh 200", fault: func(w *world, _ sandbox.Sample) { w.sb.Fake.ExpireAccessTokens() },
			state: asynq.TaskStateCompleted, retried: 0,
			calls: map[herokufake.CallKey]int{key(patch, 401): 1, key(herokufake.OAuthToken, 200): 1, key(patch, 200): 1}},
		{name: "add-on gone 404", fault: func(w *world, s sandbox.Sample) { w.sb.Fake.Deprovision(s.ID) },
			state: asynq.TaskStateArchived, retried: 0, errorCode: "push:not_found",
			calls: map[herokufake.CallKey]int{key(patch, 404): 1}},
		{name: "issuer 503 then ok", demo: failMint(503, false),
			state: asynq.TaskStateCompleted, retried: 1,
			calls: map[herokufake.CallKey]int{key(patch, 200): 1}},
		{name: "issuer 422 permanent", demo: failMint(422, true),
			state: asynq.TaskStateArchived, retried: 0, errorCode: "mint:issuer_422",
			calls: map[herokufake.CallKey]int{}},
		{name: "rate limited thrice with one retry allowed", maxRetry: 1,
			fault: script(patch, respond(429), respond(429), respond(429)),
			state: asynq.TaskStateCompleted, retried: 0,
			calls: map[herokufake.CallKey]int{key(patch, 429): 3, key(patch, 200): 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runFailureCase(t, tc)
		})
	}
}

func runFailureCase(t *testing.T, tc failureCase) {
	var mintCalls atomic.Int64
	var p worldParams
	if tc.demo != nil {
		p.demo = append(p.demo, tc.demo(&mintCalls))
	}
	w := newWorld(t, p)
	s := w.provision(1, sandbox.Mix{})[0]
	wp := workerParams{retryDelay: fastRetry}
	if tc.httpTimeout > 0 {
		wp.httpClient = &http.Client{Timeout: tc.httpTimeout}
	}
	w.startWorker(wp)
	if tc.fault != nil {
		tc.fault(w, s)
	}
	before := w.sb.Fake.Stats().Calls

	start := time.Now()
	rotationID, batchID := enqueueRotation(t, w, s.ID, tc.maxRetry)
	info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rotationID), 30*time.Second)
	took := time.Since(start)
	if info.State != tc.state || info.Retried != tc.retried {
		t.Errorf("task: %s after %d retries (last error %q); want %s after %d", info.State, info.Retried, info.LastErr, tc.state, tc.retried)
	}
	after := w.sb.Fake.Stats().Calls
	for k, want := range tc.calls {
		if got := after[k] - before[k]; got != want {
			t.Errorf("Heroku calls %s: %d, want %d", k, got, want)
		}
	}
	// Every old or discarded credential is revoked, safely, either way (I3).
	w.waitRevoked(15 * time.Second)
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
	if tc.state == asynq.TaskStateCompleted {
		checkRotated(t, w, s)
	} else {
		checkFailed(t, w, s, rotationID, batchID, tc.errorCode, info)
	}
	t.Logf("%s: task %s in %s, retried %d (max %d), last error %q",
		tc.name, info.State, took.Round(time.Millisecond), info.Retried, info.MaxRetry, info.LastErr)
}

// enqueueRotation requests one rotation: through the fleet producer, or,
// with maxRetry set, as another app would with its own task options.
func enqueueRotation(t *testing.T, w *world, instanceID string, maxRetry int) (rotationID, batchID string) {
	t.Helper()
	if maxRetry <= 0 {
		res := w.rotate(instanceID)
		return res.Items[0].RotationID, res.BatchID
	}
	rotationID = tasks.NewID("rot")
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: instanceID, RotationID: rotationID},
		asynq.MaxRetry(maxRetry))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.queue.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	return rotationID, ""
}

// checkFailed checks a rotation that failed for good: its pending
// credential (if one was minted) is discarded and revoked, the instance
// keeps its current credential, and the failure is recorded.
func checkFailed(t *testing.T, w *world, s sandbox.Sample, rotationID, batchID, code string, info *asynq.TaskInfo) {
	t.Helper()
	ctx := context.Background()
	in, err := w.store.Instance(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if in.CurrentCredential != s.Provisioned || !w.sb.Demo.Valid(s.Provisioned) {
		t.Errorf("current credential: %s (valid %v), want the provisioned %s kept", in.CurrentCredential, w.sb.Demo.Valid(s.Provisioned), s.Provisioned)
	}
	if in.LastError == "" || !strings.Contains(info.LastErr, in.LastError) {
		t.Errorf("instance last error %q, task's %q: want the failure recorded", in.LastError, info.LastErr)
	}
	rot, err := w.store.Rotation(ctx, rotationID)
	if err != nil || rot.State != store.RotationFailed {
		t.Errorf("rotation: %+v, %v; want failed", rot, err)
	}
	if rot.CredentialID != "" {
		pending, err := w.store.Credential(ctx, s.ID, rot.CredentialID)
		if err != nil || pending.State != store.CredentialDiscarded || !pending.Revoked() || w.sb.Demo.Valid(pending.ID) {
			t.Errorf("pending credential: %+v, %v, valid at the issuer %v; want discarded and revoked", pending, err, w.sb.Demo.Valid(pending.ID))
		}
	}
	if w.sb.Fake.ConfigChanges(s.ID) != 0 {
		t.Error("a failed rotation changed the Heroku config")
	}
	if batchID != "" {
		b, _ := w.store.Batch(ctx, batchID)
		if b.Failed != 1 || b.Failures[code] != 1 {
			t.Errorf("batch: %d failed by %v; want 1 by %s", b.Failed, b.Failures, code)
		}
	}
}

// A rotation whose retries were all used by failures, and whose last run is
// then rate limited, is archived by asynq; waiting is no failure, so the
// reconcile sweep runs it again and it completes.
func TestRateLimitedLastRunIsResumed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	w.startWorker(workerParams{retryDelay: fastRetry, sweep: true})
	// The run sends a push answered 500 again at once; answered 500 twice,
	// the run fails and uses the one retry.
	w.sb.Fake.Script(herokufake.PatchConfig, herokufake.Respond(500), herokufake.Respond(500), herokufake.Respond(429))

	start := time.Now()
	rotationID, _ := enqueueRotation(t, w, s.ID, 1)
	var info *asynq.TaskInfo
	waitFor(t, 20*time.Second, "rotation", func() (bool, string) {
		var err error
		if info, err = w.insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID(rotationID)); err != nil {
			return false, err.Error()
		}
		return info.State == asynq.TaskStateCompleted, fmt.Sprintf("state %s, retried %d, last error %q", info.State, info.Retried, info.LastErr)
	})
	took := time.Since(start)
	if info.Retried != 1 {
		t.Errorf("retried %d, want 1: the run of the 500s only", info.Retried)
	}
	w.waitRevoked(15 * time.Second)
	checkRotated(t, w, s)
	t.Logf("500 twice, then 429 on the last allowed run: completed in %s after the sweep ran it again, retried %d (max %d)",
		took.Round(time.Millisecond), info.Retried, info.MaxRetry)
}
