package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer whose credential is an API key written in groups (a UUID, a
// key in dashed blocks, as many services issue theirs) and that names the
// credential by that key has the id refused (mint:invalid_credential_id),
// as one holding a key written in one run is: no group of such a key is a
// long run of letters and digits, so the id was taken for an ordinary one,
// and the key went in clear to Redis (keys, hashes, the fleet's history),
// the revoke task's payload, the worker's log lines and every page.
// Nothing is pushed, and the key is found nowhere.
func TestAdversarialIssuerNamesACredentialByAKeyInGroups(t *testing.T) {
	t.Parallel()
	keys := []string{"3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47", "k9Xq-2mPv-7LwR-4zTy-8NcB"}
	w := newWorld(t, worldParams{})
	samples := w.provision(len(keys), sandbox.Mix{})
	adv := newAdversary(t, w)
	byInstance := map[string]string{}
	for i, s := range samples {
		byInstance[s.ID] = keys[i]
	}
	adv.rewriteMints(func(instanceID string, answer map[string]any) {
		key := byInstance[instanceID]
		answer["credential_id"] = key
		answer["config"] = map[string]any{issuer.DefaultConfigVar: key}
	})
	wk := adv.startWorker(w, &errorLog{})

	for _, s := range samples {
		rot := w.rotate(s.ID).Items[0].RotationID
		info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rot), 30*time.Second)
		if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, "not one rekey can use") {
			t.Errorf("%s: rotate task %s after %d retries (%q); want archived at the first run, the id refused",
				s.ID, info.State, info.Retried, info.LastErr)
		}
		in, err := w.store.Instance(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if in.CurrentCredential != s.Provisioned || in.LastErrorCode != "mint:invalid_credential_id" {
			t.Errorf("%s: current %s (want %s), last error code %q", s.ID, in.CurrentCredential, s.Provisioned, in.LastErrorCode)
		}
		if n := w.sb.Fake.ConfigChanges(s.ID); n != 0 {
			t.Errorf("%s: %d config changes on Heroku, want none", s.ID, n)
		}
	}
	dump, logs := redistest.Dump(t, w.redis), wk.log.String()
	for _, key := range keys {
		if strings.Contains(dump, key) {
			t.Errorf("Redis holds the key %q", key)
		}
		if strings.Contains(logs, key) {
			t.Errorf("the worker log holds the key %q", key)
		}
		for _, task := range w.allTasks() {
			if strings.Contains(task.LastErr, key) || bytes.Contains(task.Payload, []byte(key)) {
				t.Errorf("task %s holds the key %q", task.ID, key)
			}
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}
