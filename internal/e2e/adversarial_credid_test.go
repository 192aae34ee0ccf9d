package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer that mints a credential but names it with an id rekey cannot
// use (a path that climbs out of /credentials/, one with a space and a
// line break, one of 200 bytes, "..", which a URL reads as the parent)
// fails the rotation at its first run, with the code
// mint:invalid_credential_id, where it was retried ten times and left in
// flight, or for "..", recorded and sent to the issuer as a path: the
// issuer answers every retry with the same id. Nothing is pushed, the
// instance keeps its credential, and the id appears in no task error,
// event or log line.
func TestAdversarialIssuerInvalidCredentialID(t *testing.T) {
	t.Parallel()
	bad := []string{"../../admin", "cred 1\nlevel=error msg=forged", strings.Repeat("c", 200), ".."}
	w := newWorld(t, worldParams{})
	samples := w.provision(len(bad), sandbox.Mix{})
	adv := newAdversary(t, w)
	byInstance := map[string]string{}
	for i, s := range samples {
		byInstance[s.ID] = bad[i]
	}
	// The demo mints for real; its answer goes out under another id.
	adv.rewriteMints(func(instanceID string, answer map[string]any) {
		answer["credential_id"] = byInstance[instanceID]
	})
	errs := &errorLog{}
	wk := adv.startWorker(w, errs)

	for _, s := range samples {
		res := w.rotate(s.ID)
		rot := res.Items[0].RotationID
		info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rot), 30*time.Second)
		if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, "not one rekey can use") {
			t.Errorf("%s: rotate task %s after %d retries (%q); want archived at the first run, a permanent failure", s.ID, info.State, info.Retried, info.LastErr)
		}
		r, err := w.store.Rotation(context.Background(), rot)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.RotationFailed || !strings.Contains(r.Error, "revoke it at the issuer") {
			t.Errorf("%s: rotation %s (%q), want failed, telling the operator to revoke it at the issuer", s.ID, r.State, r.Error)
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
		if !w.sb.Demo.Valid(s.Provisioned) {
			t.Errorf("%s: the credential the apps hold was revoked", s.ID)
		}
		events, err := w.store.Events(context.Background(), s.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if strings.Contains(e.Detail, byInstance[s.ID]) || e.CredentialID == byInstance[s.ID] {
				t.Errorf("%s: event %+v holds the issuer's id", s.ID, e)
			}
		}
	}
	logs := wk.log.String()
	for _, id := range bad {
		if strings.Contains(logs, id) || strings.Contains(logs, strings.ReplaceAll(id, "\n", `\n`)) {
			t.Errorf("the worker log holds the issuer's id %q", id)
		}
		for _, task := range w.allTasks() {
			if strings.Contains(task.LastErr, id) {
				t.Errorf("task %s's last error holds the issuer's id %q", task.ID, id)
			}
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}

// An issuer that mints a credential and answers with its id but a config
// rekey cannot use (a var with an empty value, a number for a value, an
// empty map, none at all) fails the rotation at its first run with the
// code mint:malformed_response, where it was retried ten times and the
// credential, never recorded, stayed working at the issuer: now it is
// recorded as discarded and revoked (I3). So is one whose answer is too
// large to use (a 300 KiB value, the id after it), with the code
// mint:unreadable_answer, where the rotation was retried and the credential
// forgotten. Nothing is pushed.
func TestAdversarialIssuerUnusableConfigIsRevoked(t *testing.T) {
	t.Parallel()
	configs := []any{map[string]any{"MYADDON_URL": ""}, map[string]any{"MYADDON_URL": 42}, map[string]any{}, nil,
		map[string]any{"MYADDON_URL": "postgres://u:" + strings.Repeat("p", 300<<10) + "@db.example.com/d"}}
	codes := []string{"mint:malformed_response", "mint:malformed_response", "mint:malformed_response",
		"mint:malformed_response", "mint:unreadable_answer"}
	w := newWorld(t, worldParams{})
	samples := w.provision(len(configs), sandbox.Mix{})
	adv := newAdversary(t, w)
	byInstance, codeOf := map[string]any{}, map[string]string{}
	for i, s := range samples {
		byInstance[s.ID], codeOf[s.ID] = configs[i], codes[i]
	}
	var mu sync.Mutex
	minted := map[string]string{}
	adv.rewriteMints(func(instanceID string, answer map[string]any) {
		mu.Lock()
		minted[instanceID], _ = answer["credential_id"].(string)
		mu.Unlock()
		if c := byInstance[instanceID]; c != nil {
			answer["config"] = c
		} else {
			delete(answer, "config")
		}
	})
	adv.startWorker(w, &errorLog{})

	for _, s := range samples {
		rot := w.rotate(s.ID).Items[0].RotationID
		info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rot), 30*time.Second)
		if info.State != asynq.TaskStateArchived || info.Retried != 0 {
			t.Errorf("%s: rotate task %s after %d retries (%q); want archived at the first run", s.ID, info.State, info.Retried, info.LastErr)
		}
		in, err := w.store.Instance(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if in.CurrentCredential != s.Provisioned || in.LastErrorCode != codeOf[s.ID] {
			t.Errorf("%s: current %s (want %s), last error code %q (want %q)", s.ID, in.CurrentCredential, s.Provisioned,
				in.LastErrorCode, codeOf[s.ID])
		}
		if n := w.sb.Fake.ConfigChanges(s.ID); n != 0 {
			t.Errorf("%s: %d config changes on Heroku, want none", s.ID, n)
		}
	}
	w.waitRevoked(30 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	for _, s := range samples {
		id := minted[s.ID]
		if id == "" {
			t.Fatalf("%s: the issuer minted nothing", s.ID)
		}
		if w.sb.Demo.Valid(id) {
			t.Errorf("%s: credential %s, minted with an unusable config, still works at the issuer (I3)", s.ID, id)
		}
		c, err := w.store.Credential(context.Background(), s.ID, id)
		if err != nil || !c.Revoked() {
			t.Errorf("%s: credential %s recorded as %+v (%v), want revoked", s.ID, id, c, err)
		}
		if !w.sb.Demo.Valid(s.Provisioned) {
			t.Errorf("%s: the credential the apps hold was revoked", s.ID)
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}

// An issuer that answers a mint with a new id but the config the apps
// already hold (the current credential's) fails the rotation at its first
// run (mint:config_reused), before any push: pushing it would change
// nothing on Heroku, and revoking the current credential after the grace
// would break the apps that still run on its value (I1). The current
// credential stays current and working.
func TestAdversarialIssuerCurrentConfigUnderANewID(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	adv := newAdversary(t, w)
	adv.startWorker(w, &errorLog{})
	// A first rotation, faithful, so that the current credential is one
	// rekey saw minted (the provisioning one's config was never shown to it).
	w.waitBatch(w.rotate(s.ID).BatchID, 30*time.Second)
	ctx := context.Background()
	before, err := w.store.Instance(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	w.refusedConfigReuse(adv, before, w.sb.Fake.Config(s.ID), 1)
	time.Sleep(2 * testGrace)
	if !w.sb.Demo.Valid(before.CurrentCredential) {
		t.Errorf("the current credential %s, whose config the apps hold, was revoked (I1)", before.CurrentCredential)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}

// refusedConfigReuse has the issuer answer the next mint of instance in
// with config under a new id, rotates it, and checks that the rotation
// failed at its first run (mint:config_reused) before any push: the
// instance keeps its current credential, and Heroku's config changed
// changes times in all, none of them this rotation's.
func (w *world) refusedConfigReuse(adv *adversary, in store.Instance, config any, changes int) {
	w.t.Helper()
	adv.rewriteMints(func(_ string, answer map[string]any) { answer["config"] = config })
	rot := w.rotate(in.ID).Items[0].RotationID
	info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rot), 30*time.Second)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 {
		w.t.Errorf("rotate task %s after %d retries (%q); want archived at the first run", info.State, info.Retried, info.LastErr)
	}
	after, err := w.store.Instance(context.Background(), in.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	if after.CurrentCredential != in.CurrentCredential || after.LastErrorCode != "mint:config_reused" {
		w.t.Errorf("current %s (was %s), last error code %q; want it kept, mint:config_reused",
			after.CurrentCredential, in.CurrentCredential, after.LastErrorCode)
	}
	if n := w.sb.Fake.ConfigChanges(in.ID); n != changes {
		w.t.Errorf("%d config changes on Heroku, want %d, none of them the refused mint's", n, changes)
	}
}

// rewriteMints has the demo issuer mint for real and edit its 2xx answer
// before it goes out (edit gets the instance the mint was for); every other
// request, and an answer that is not a 2xx JSON object, passes as it is.
func (a *adversary) rewriteMints(edit func(instanceID string, answer map[string]any)) {
	a.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/credentials" {
			return false
		}
		var req struct {
			InstanceID string `json:"instance_id"`
		}
		_ = json.Unmarshal(body, &req)
		rec := httptest.NewRecorder()
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.backend.ServeHTTP(rec, r)
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code/100 != 2 {
			rw.WriteHeader(rec.Code)
			_, _ = rw.Write(rec.Body.Bytes())
			return true
		}
		edit(req.InstanceID, answer)
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(rec.Code)
		_ = json.NewEncoder(rw).Encode(answer)
		return true
	})
}

// An issuer that answers a mint with a new id but the config of a
// credential already revoked (a stale cache, a replayed answer) fails the
// rotation at its first run (mint:config_reused), before any push: pushing
// it would put a revoked secret in the apps' config, and they would break
// at their restart (I1). The current credential stays current and working.
func TestAdversarialIssuerRevokedConfigUnderANewID(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	adv := newAdversary(t, w)
	adv.startWorker(w, &errorLog{})
	ctx := context.Background()
	// Two faithful rotations: the first one's credential is superseded by
	// the second and revoked after the grace.
	w.waitBatch(w.rotate(s.ID).BatchID, 30*time.Second)
	first, err := w.store.Instance(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	revoked := w.sb.Fake.Config(s.ID)
	w.waitBatch(w.rotate(s.ID).BatchID, 30*time.Second)
	waitFor(t, 10*testGrace, "the revocation of "+first.CurrentCredential, func() (bool, string) {
		return !w.sb.Demo.Valid(first.CurrentCredential), "still valid"
	})
	before, err := w.store.Instance(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}

	w.refusedConfigReuse(adv, before, revoked, 2)
	if !w.sb.Demo.Valid(before.CurrentCredential) {
		t.Errorf("the current credential %s is no longer valid", before.CurrentCredential)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}

// An issuer whose mint answer rekey cannot use, and whose credential id
// holds a secret of that answer's config, has the id refused as when the
// config is usable: a URL's password in the id of an answer too large to
// use (300 KiB), or of one with a var left empty. The credential is not
// recorded (the operator revokes it at the issuer, as the rotation's error
// says), so the secret reaches no Redis key, task or log line. So is an id
// whose too large answer holds more config strings than rekey reads (over
// 64 KiB: Heroku keeps 32 KB of config vars an app): it cannot be checked
// (mint:unchecked_credential_id). And so is an id that holds the password
// of a URL given as a var's name, names and values swapped, or a number
// of the config (a config var is a string: such an answer is unusable).
func TestAdversarialIssuerNamesAnUnusableCredentialByItsSecret(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat("x", 300<<10)
	tooMany := map[string]any{}
	for i := range 2000 {
		tooMany[fmt.Sprintf("VAR_%04d", i)] = fmt.Sprintf("%040d", i)
	}
	cases := []struct {
		name, password, id, code string
		config                   map[string]any
		pad                      bool
	}{
		{"too large, its password in the id", "Zq8xk2Lm9Vb4", "c-Zq8xk2Lm9Vb4", "mint:invalid_credential_id",
			map[string]any{"MYADDON_URL": "postgres://u:Zq8xk2Lm9Vb4@db.example.com/d", "PAD": pad}, false},
		{"a var empty, its password in the id", "Hn3pW7rT5yUe", "c-Hn3pW7rT5yUe", "mint:invalid_credential_id",
			map[string]any{"MYADDON_URL": "postgres://u:Hn3pW7rT5yUe@db.example.com/d", "MYADDON_TOKEN": ""}, false},
		{"too large, too many config strings", "", "c-unchecked-id-7", "mint:unchecked_credential_id", tooMany, true},
		{"names and values swapped, the password in the id", "Rt6yHb2nWq9z", "c-Rt6yHb2nWq9z", "mint:invalid_credential_id",
			map[string]any{"postgres://u:Rt6yHb2nWq9z@db.example.com/d": "MYADDON_URL"}, false},
		{"a number in the config, in the id", "40123456789012", "c-40123456789012", "mint:invalid_credential_id",
			map[string]any{"MYADDON_URL": "postgres://db.example.com/d", "MYADDON_PIN": 40123456789012}, false},
	}
	w := newWorld(t, worldParams{})
	samples := w.provision(len(cases), sandbox.Mix{})
	adv := newAdversary(t, w)
	byInstance := map[string]int{}
	for i, s := range samples {
		byInstance[s.ID] = i
	}
	adv.rewriteMints(func(instanceID string, answer map[string]any) {
		c := cases[byInstance[instanceID]]
		answer["credential_id"], answer["config"] = c.id, c.config
		if c.pad {
			answer["debug"] = pad
		}
	})
	wk := adv.startWorker(w, &errorLog{})

	for i, s := range samples {
		c := cases[i]
		rot := w.rotate(s.ID).Items[0].RotationID
		info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rot), 30*time.Second)
		if info.State != asynq.TaskStateArchived || info.Retried != 0 {
			t.Errorf("%s: rotate task %s after %d retries (%q); want archived at the first run", c.name, info.State, info.Retried, info.LastErr)
		}
		r, err := w.store.Rotation(context.Background(), rot)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.RotationFailed || !strings.Contains(r.Error, "revoke it at the issuer") || r.CredentialID != "" {
			t.Errorf("%s: rotation %s naming %q (%q); want failed, naming no credential, telling the operator to revoke it at the issuer",
				c.name, r.State, r.CredentialID, r.Error)
		}
		in, err := w.store.Instance(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if in.CurrentCredential != s.Provisioned || in.LastErrorCode != c.code {
			t.Errorf("%s: current %s (want %s), last error code %q (want %q)", c.name, in.CurrentCredential, s.Provisioned, in.LastErrorCode, c.code)
		}
		if n := w.sb.Fake.ConfigChanges(s.ID); n != 0 {
			t.Errorf("%s: %d config changes on Heroku, want none", c.name, n)
		}
	}
	dump, logs := redistest.Dump(t, w.redis), wk.log.String()
	for _, c := range cases {
		for _, text := range []string{c.id, c.password} {
			if text == "" {
				continue
			}
			if strings.Contains(dump, text) {
				t.Errorf("%s: Redis holds %q", c.name, text)
			}
			if strings.Contains(logs, text) {
				t.Errorf("%s: the worker log holds %q", c.name, text)
			}
			for _, task := range w.allTasks() {
				if strings.Contains(task.LastErr, text) || bytes.Contains(task.Payload, []byte(text)) {
					t.Errorf("%s: task %s holds %q", c.name, task.ID, text)
				}
			}
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}
