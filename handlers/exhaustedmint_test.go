package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/tasks"
)

// archivedInspector answers for one rotate task, archived with its
// retries used up, as asynq holds it once they are; no other task exists.
type archivedInspector struct{ info *asynq.TaskInfo }

func (a archivedInspector) GetTaskInfo(queue, id string) (*asynq.TaskInfo, error) {
	if queue == a.info.Queue && id == a.info.ID {
		return a.info, nil
	}
	return nil, asynq.ErrTaskNotFound
}
func (archivedInspector) RunTask(string, string) error    { return nil }
func (archivedInspector) DeleteTask(string, string) error { return nil }

// TestRetriesRunOutAfterAMintWhoseAnswerWasLostSaySo: a rotation runs, the
// issuer mints its credential and the answer never comes back (a gateway's
// 504 after the issuer's write), and the task's retries run out before
// any mint is answered (the issuer's gateway down for hours). The sweep
// ended the rotation retries_exhausted, "gave up after N retries", and
// nothing told anyone that the issuer may hold a valid credential minted
// for it that no record of rekey's names, never revoked (I3). The sweep
// cannot ask the issuer, the party that was down: the failure says so on
// the instance's history, naming the rotation, never a secret.
func TestRetriesRunOutAfterAMintWhoseAnswerWasLostSaySo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	lost, _ := lostMints(t, g, false)
	task := rotateTask(t, "inst-1", "rot-x")
	if err := g.run(task); err == nil || isPermanent(err) {
		t.Fatalf("first run = %v, want a retryable error", err)
	}
	id, _ := lost.Load().(string)
	if id == "" || !g.demo.Valid(id) {
		t.Fatalf("the issuer minted nothing valid (%q)", id)
	}
	info := &asynq.TaskInfo{ID: tasks.RotateTaskID("rot-x"), Queue: tasks.QueueDefault, Type: task.Type(),
		Payload: task.Payload(), State: asynq.TaskStateArchived, MaxRetry: 25, Retried: 25,
		LastErr: "mint: issuer mint: status 504 (gateway_timeout)", LastFailedAt: time.Now()}
	sw := reconcile.New(reconcile.Params{Store: g.st, Enqueuer: g.enq, Inspector: archivedInspector{info},
		Logger: zerolog.Nop(), Now: func() time.Time { return time.Now().Add(time.Hour) }})
	res, err := sw.Sweep(ctx)
	if err != nil || res.RotationsFailed != 1 {
		t.Fatalf("sweep = %+v, %v; want the rotation ended", res, err)
	}
	in, err := g.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.LastErrorCode != "retries_exhausted" {
		t.Errorf("last error code %q, want retries_exhausted", in.LastErrorCode)
	}
	events, err := g.st.Events(ctx, "inst-1", 50)
	if err != nil {
		t.Fatal(err)
	}
	said := false
	for _, e := range events {
		if e.RotationID == "rot-x" && e.Type == "failed" &&
			strings.Contains(e.Detail, "the issuer may hold a credential minted for rotation rot-x") {
			said = true
		}
		if strings.Contains(e.Detail, id) {
			t.Errorf("event %s names the issuer's credential: %s", e.Type, e.Detail)
		}
	}
	if !said {
		t.Errorf("no failed event of rot-x says the issuer may hold its credential: %+v", events)
	}
}
