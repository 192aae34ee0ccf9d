package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// The issuer's own refusal of a bulk rotation is asked again once before the
// rotation fails, in case it is the whole wave's (handlers.Rotate.wavesRefusal);
// no other refusal is. Over real HTTP, against a worker that counts the wave's
// outcomes as `rekey worker` does (asynq's delays cut short):
//   - a bulk rotation whose mint the issuer refuses: asked twice, then failed
//     with the issuer's code;
//   - one whose verify of the credential just minted the issuer refuses: that
//     credential verified twice, never pushed, and revoked once the rotation
//     fails;
//   - another app's bulk task allowed no retry (asynq.MaxRetry(0)): asked once,
//     failed with the issuer's code, not left to end as retries_exhausted;
//   - an interactive rotation (a customer's click): asked once.
func TestTheIssuersRefusalOfABulkRotationIsAskedAgainOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(4, sandbox.Mix{})
	mintRefused, verifyRefused, noRetry, click := samples[0], samples[1], samples[2], samples[3]
	refusesMint := map[string]bool{mintRefused.ID: true, noRetry.ID: true, click.ID: true}
	a := newAdversary(t, w)
	a.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		var req struct {
			InstanceID string `json:"instance_id"`
		}
		_ = json.Unmarshal(body, &req)
		op := webhookOp(capturedRequest{method: r.Method, path: r.URL.EscapedPath()})
		if !(op == "mint" && refusesMint[req.InstanceID] || op == "verify" && req.InstanceID == verifyRefused.ID) {
			return false
		}
		rw.Header().Set("Content-Type", "application/json")
		if op == "mint" {
			rw.WriteHeader(http.StatusForbidden)
			_, _ = rw.Write([]byte(`{"error":"tenant_suspended"}`))
		} else {
			rw.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = rw.Write([]byte(`{"error":"credential_invalid"}`))
		}
		return true
	})
	w.startWorker(workerParams{retryDelay: fastRetry, sweep: true, issuerURL: a.url, wave: true})

	cases := []struct {
		id, queue, code string
		opts            []asynq.Option
		mints, verifies int
	}{
		{mintRefused.ID, tasks.QueueBulk, "mint:issuer_403", nil, 2, 0},
		{verifyRefused.ID, tasks.QueueBulk, "verify:issuer_422", nil, 1, 2},
		{noRetry.ID, tasks.QueueBulk, "mint:issuer_403", []asynq.Option{asynq.MaxRetry(0)}, 1, 0},
		{click.ID, tasks.QueueInteractive, "mint:issuer_403", nil, 1, 0},
	}
	rotations := map[string]string{}
	for _, c := range cases {
		rot := tasks.NewID("rot")
		rotations[c.id] = rot
		task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: c.id, RotationID: rot, Reason: "other app"},
			append([]asynq.Option{asynq.Queue(c.queue)}, c.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.queue.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		w.waitTask(c.queue, tasks.RotateTaskID(rotations[c.id]), 30*time.Second)
	}
	mints, verifies, verified := map[string]int{}, map[string]int{}, map[string]string{}
	for _, r := range a.captured() {
		var req struct {
			InstanceID   string `json:"instance_id"`
			CredentialID string `json:"credential_id"`
		}
		_ = json.Unmarshal(r.body, &req)
		switch webhookOp(r) {
		case "mint":
			mints[req.InstanceID]++
		case "verify":
			verifies[req.InstanceID]++
			if prev := verified[req.InstanceID]; prev != "" && prev != r.path {
				t.Errorf("%s: verify asked of %s, then of %s: want the credential minted once", req.InstanceID, prev, r.path)
			}
			verified[req.InstanceID] = r.path
		}
	}
	for _, c := range cases {
		in, err := w.store.Instance(t.Context(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		if in.LastErrorCode != c.code || mints[c.id] != c.mints || verifies[c.id] != c.verifies {
			t.Errorf("%s on %s: failed with %q after %d mints and %d verifies, want %q after %d and %d",
				c.id, c.queue, in.LastErrorCode, mints[c.id], verifies[c.id], c.code, c.mints, c.verifies)
		}
		if n := w.sb.Fake.ConfigWrites(c.id); n != 0 {
			t.Errorf("%s: %d config writes, want none", c.id, n)
		}
	}
	r, err := w.store.Rotation(t.Context(), rotations[verifyRefused.ID])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the credential the issuer refused at verify to be revoked", func() (bool, string) {
		valid := w.sb.Demo.Valid(r.CredentialID)
		return r.CredentialID != "" && !valid, fmt.Sprintf("credential %q valid %v", r.CredentialID, valid)
	})
}
