package tasks_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/tasks"
)

func newClient(t *testing.T) (*asynq.Client, *asynq.Inspector) {
	t.Helper()
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c, i := asynq.NewClient(opt), asynq.NewInspector(opt)
	t.Cleanup(func() { _ = c.Close(); _ = i.Close() })
	return c, i
}

func TestRotateTaskCarriesDefaults(t *testing.T) {
	c, insp := newClient(t)
	rot := tasks.NewID("rot")
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-defaults", RotationID: rot})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetTaskInfo(tasks.QueueDefault, tasks.RotateTaskID(rot))
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxRetry != tasks.RotateMaxRetry || info.Timeout != tasks.RotateTimeout || info.Retention != tasks.Retention {
		t.Errorf("defaults: max retry %d, timeout %s, retention %s; want %d, %s, %s",
			info.MaxRetry, info.Timeout, info.Retention, tasks.RotateMaxRetry, tasks.RotateTimeout, tasks.Retention)
	}
	if _, err := c.Enqueue(task); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("enqueueing one rotation twice: err = %v, want ErrTaskIDConflict", err)
	}
}

func TestRevokeTaskIsScheduledOnTheRevokeQueue(t *testing.T) {
	c, insp := newClient(t)
	at := time.Now().Add(time.Hour)
	cred := tasks.NewID("cred")
	task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-revoke", CredentialID: cred}, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID("inst-revoke", cred))
	if err != nil {
		t.Fatal(err)
	}
	// asynq keeps whole seconds: the task is due at the first whole second
	// not before its revoke time, never earlier.
	want := at.Truncate(time.Second).Add(time.Second)
	if info.State != asynq.TaskStateScheduled || !info.NextProcessAt.Equal(want) || info.NextProcessAt.Before(at) {
		t.Errorf("revoke task: state %s at %s, want scheduled at %s (revoke time %s)", info.State, info.NextProcessAt, want, at)
	}
}

func TestParseRejectsBadPayloads(t *testing.T) {
	for _, tc := range []struct {
		name string
		task *asynq.Task
	}{
		{"not json", asynq.NewTask(tasks.TypeRotate, []byte("{not json"))},
		{"wrong type", asynq.NewTask(tasks.TypeRevoke, []byte(`{"instance_id":"a","rotation_id":"b"}`))},
		{"no instance", asynq.NewTask(tasks.TypeRotate, []byte(`{"rotation_id":"b"}`))},
		{"no rotation", asynq.NewTask(tasks.TypeRotate, []byte(`{"instance_id":"a"}`))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tasks.ParseRotate(tc.task); !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Errorf("ParseRotate: err = %v, want ErrInvalidPayload", err)
			}
		})
	}
}

func TestNewRotateTaskFillsRotationID(t *testing.T) {
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tasks.ParseRotate(task)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.RotationID) < len("rot_")+8 || p.RotationID[:4] != "rot_" {
		t.Errorf("rotation id %q, want rot_ and random hex", p.RotationID)
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(tasks.Duration(90 * time.Minute))
	if err != nil || string(b) != `"1h30m0s"` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	for in, want := range map[string]time.Duration{`"2h"`: 2 * time.Hour, `30`: 30 * time.Second} {
		var d tasks.Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("unmarshal %s: %s, %v; want %s", in, time.Duration(d), err, want)
		}
	}
	var d tasks.Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error(`unmarshal "soon": no error`)
	}
}

// An id rekey cannot use in its keys (a Redis key separator, a space,
// unicode, more than 128 bytes, dots alone) can never be claimed: a producer
// is told so when it builds the task, and a worker archives such a task at
// once rather than retrying it for hours.
func TestRotateTaskRefusesUnusableIDs(t *testing.T) {
	for _, tc := range []struct{ name, instance, rotation string }{
		{"key separator", "inst:1", "rot_1"},
		{"space", "inst 1", "rot_1"},
		{"unicode", "instänz", "rot_1"},
		{"line break", "inst\n1", "rot_1"},
		{"too long", strings.Repeat("i", 129), "rot_1"},
		{"dots", "..", "rot_1"},
		{"rotation with separator", "inst-1", "rot:1"},
		{"rotation too long", "inst-1", strings.Repeat("r", 129)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tasks.RotatePayload{InstanceID: tc.instance, RotationID: tc.rotation}
			if _, err := tasks.NewRotateTask(p); err == nil {
				t.Errorf("NewRotateTask(%q, %q): no error", tc.instance, tc.rotation)
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tasks.ParseRotate(asynq.NewTask(tasks.TypeRotate, b)); !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Errorf("ParseRotate(%s): err = %v, want ErrInvalidPayload", b, err)
			}
		})
	}
	long := strings.Repeat("i", 128)
	if _, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: long, RotationID: "rot_1.a-b@c"}); err != nil {
		t.Errorf("NewRotateTask with usable ids: %v", err)
	}
}

// A revoke task names its credential by ids that go into Redis keys and the
// issuer's URL. One rekey cannot use is refused as a rotation's is, and
// the refusal, which asynq keeps as the task's last error (/monitoring),
// gives its length, never the id: a megabyte of text, line breaks or
// terminal escapes.
func TestRevokeTaskRefusesUnusableIDs(t *testing.T) {
	hostile := strings.Repeat("c", 1<<20) + ":*\r\n\x1b[31m"
	for _, tc := range []struct{ name, instance, credential string }{
		{"key separator", "inst:1", "cred-1"},
		{"line break", "inst-1", "cred\n1"},
		{"escape", "inst-1", "cred\x1b[31m"},
		{"too long", "inst-1", strings.Repeat("c", 129)},
		{"dots", "inst-1", ".."},
		{"hostile", "inst-1", hostile},
		{"hostile instance", hostile, "cred-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tasks.RevokePayload{InstanceID: tc.instance, CredentialID: tc.credential}
			if _, err := tasks.NewRevokeTask(p, time.Now()); err == nil {
				t.Errorf("NewRevokeTask: no error")
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tasks.ParseRevoke(asynq.NewTask(tasks.TypeRevoke, b))
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("ParseRevoke: err = %v, want ErrInvalidPayload", err)
			}
			if msg := err.Error(); len(msg) > 200 || strings.ContainsAny(msg, "\r\n\x1b") || strings.Contains(msg, "[31m") {
				t.Errorf("ParseRevoke's error echoes the id: %.300q", msg)
			}
		})
	}
	if _, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-1", CredentialID: "cred_1.a-b@c"}, time.Now()); err != nil {
		t.Errorf("NewRevokeTask with usable ids: %v", err)
	}
}

// A reason is kept in the rotation's record, the instance's history and the
// fleet's audit stream: another app's task that carries a page of text (a
// stack trace, a whole ticket) is cut to MaxReasonLen, at a character's
// boundary, as a rotation requested through the HTTP API is limited to it.
func TestRotateReasonIsCut(t *testing.T) {
	long := strings.Repeat("é", 3*tasks.MaxReasonLen)
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", Reason: long})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_1", Reason: long})
	if err != nil {
		t.Fatal(err)
	}
	for name, task := range map[string]*asynq.Task{"NewRotateTask": task, "another app's payload": asynq.NewTask(tasks.TypeRotate, raw)} {
		p, err := tasks.ParseRotate(task)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(p.Reason) > tasks.MaxReasonLen || !utf8.ValidString(p.Reason) || !strings.HasPrefix(long, p.Reason) || len(p.Reason) < tasks.MaxReasonLen-3 {
			t.Errorf("%s: reason of %d bytes (valid UTF-8: %t), want the first %d bytes at most", name, len(p.Reason), utf8.ValidString(p.Reason), tasks.MaxReasonLen)
		}
	}
}

// A batch id another app gives its rotate task is kept in the rotation's
// record and shown to operators: one of more than 128 bytes or with bytes
// outside printable ASCII (a megabyte of text, line breaks, terminal
// escapes) is refused when the task is built, the error naming the field
// and its length, not its text; written by hand into a payload, it is
// dropped, and the rotation runs in no batch. A correlation id with a
// space or a colon is kept, as it always was.
func TestRotateTaskRefusesAnUnusableBatchID(t *testing.T) {
	for _, batch := range []string{"corr\r\n\x1b[31m", "caf\u00e9", strings.Repeat("b", 129), strings.Repeat("b", 1<<20)} {
		p := tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_1", BatchID: batch}
		_, err := tasks.NewRotateTask(p)
		if err == nil || !strings.Contains(err.Error(), "batch_id of") || len(err.Error()) > 200 ||
			strings.ContainsAny(err.Error(), "\r\n\x1b") {
			t.Errorf("NewRotateTask with batch id %.40q: err = %.300v, want one naming batch_id, not its text", batch, err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tasks.ParseRotate(asynq.NewTask(tasks.TypeRotate, b)); err != nil || got.BatchID != "" {
			t.Errorf("ParseRotate with batch id %.40q = %.40q, %v; want it dropped", batch, got.BatchID, err)
		}
	}
	for _, batch := range []string{"corr_42.a-b@c", "order 42", "jira:ABC-1", strings.Repeat("b", 128)} {
		p := tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_1", BatchID: batch}
		task, err := tasks.NewRotateTask(p)
		if err != nil {
			t.Errorf("NewRotateTask with batch id %.40q: %v", batch, err)
			continue
		}
		if got, err := tasks.ParseRotate(task); err != nil || got.BatchID != batch {
			t.Errorf("ParseRotate with batch id %.40q = %.40q, %v; want it kept", batch, got.BatchID, err)
		}
	}
}
