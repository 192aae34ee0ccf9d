package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer whose mint sets a new password each time it is asked (the
// credential's id follows the rotation id, its secret does not) answers
// two overlapping runs of one rotation with one credential and two
// configs: another app's task with a one-second deadline is run again
// while its first mint is still being answered. The first answer, saved
// first, holds the password the second mint replaced. Which config an
// issuer keeps cannot be told from its answers, so neither is pushed: the
// rotation fails at mint (code mint:config_changed), the credential is
// revoked, and the app keeps its current one, still valid.
func TestAdversarialIssuerAnswersARemintWithAnotherConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	before := w.current(s.ID)
	adv := newAdversary(t, w)
	second := make(chan struct{})
	var mints atomic.Int32
	adv.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		if webhookOp(capturedRequest{method: r.Method, path: r.URL.EscapedPath()}) != "mint" {
			return false
		}
		switch mints.Add(1) {
		case 1: // once the second mint is in: the password it replaces
			select {
			case <-second:
			case <-time.After(20 * time.Second):
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			rec := httptest.NewRecorder()
			adv.backend.ServeHTTP(rec, r)
			var answer struct {
				CredentialID string            `json:"credential_id"`
				Config       map[string]string `json:"config"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Errorf("the demo's mint answer: %v", err)
				return false
			}
			for name, v := range answer.Config {
				answer.Config[name] = v + "-replaced"
			}
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(rec.Code)
			_ = json.NewEncoder(rw).Encode(answer)
			return true
		case 2: // the password the issuer keeps, once the first is saved
			close(second)
			waitFor(t, 20*time.Second, "the first answer saved", func() (bool, string) {
				rot, _ := w.store.Rotation(ctx, "rot-remint")
				return rot.CredentialID != "", rot.State
			})
		}
		return false
	})
	adv.startWorker(w, &errorLog{})
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: s.ID, RotationID: "rot-remint"},
		asynq.Timeout(time.Second), asynq.MaxRetry(5))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.queue.EnqueueContext(ctx, task); err != nil {
		t.Fatal(err)
	}
	var rot store.Rotation
	waitFor(t, 60*time.Second, "the rotation to end", func() (bool, string) {
		rot, _ = w.store.Rotation(ctx, "rot-remint")
		return rot.State == store.RotationFailed || rot.State == store.RotationPromoted, rot.State
	})
	w.waitRevoked(30 * time.Second)
	if rot.State != store.RotationFailed || !strings.Contains(rot.Error, "the same credential and another config") {
		t.Errorf("rotation %s (%q) after two configs for one credential; want it failed at mint for it", rot.State, rot.Error)
	}
	held, ok := w.sb.Demo.Lookup(w.sb.Fake.Config(s.ID)[issuer.DefaultConfigVar])
	if !ok || held != before || !w.sb.Demo.Valid(before) {
		t.Errorf("Heroku holds credential %q (known %v), want the current %s, still valid (%v)", held, ok, before, w.sb.Demo.Valid(before))
	}
	if rot.CredentialID != "" && w.sb.Demo.Valid(rot.CredentialID) {
		t.Errorf("credential %s, minted twice with two configs and pushed never, is still valid (I3)", rot.CredentialID)
	}
	if n := mints.Load(); n < 2 {
		t.Errorf("%d mints: the runs did not overlap", n)
	}
}
