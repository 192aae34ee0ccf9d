package handlers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/handlers"
)

// TestAnotherAppsTaskOnRekeysQueuesSaysWhatToDo plays a partner's Go app
// that uses asynq on rekey's Redis and puts its own tasks on asynq's
// default queue, which rekey's workers also serve: each such task that a
// rekey worker takes fails with an error (the task's last error in
// /monitoring, the worker's task_failed line) that says the type is not
// rekey's and what to change, rather than asynq's bare "handler not
// found"; it quotes neither the payload nor more than the start of the type.
func TestAnotherAppsTaskOnRekeysQueuesSaysWhatToDo(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	for _, typ := range []string{"email:deliver", "rekey:rotate:v2", strings.Repeat("t", 1<<20)} {
		err := g.run(asynq.NewTask(typ, []byte(`{"to":"customer@example.com","token":"sk_live_0123456789"}`)))
		if err == nil || !handlers.IsFailure(err) {
			t.Fatalf("type %.40q: err = %v, want a failure", typ, err)
		}
		msg := err.Error()
		for _, want := range []string{"is not rekey's", "interactive, default, bulk and revoke", "asynq.Queue"} {
			if !strings.Contains(msg, want) {
				t.Errorf("type %.40q: error %.300q does not say %q", typ, msg, want)
			}
		}
		if strings.Contains(msg, "sk_live") || len(msg) > 600 {
			t.Errorf("type %.40q: the error quotes the payload or the whole type (%d bytes): %.300s", typ, len(msg), msg)
		}
	}
}

// TestRegisterLeavesTheCallersOwnTasksAlone plays a Go app that serves
// rekey's task types beside its own on one asynq.ServeMux (Register wires
// rekey's into the mux it is given): its own types, registered before or
// after Register, still reach its handlers, and only a type no handler
// takes gets the error saying it is not rekey's.
func TestRegisterLeavesTheCallersOwnTasksAlone(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	var got []string
	own := asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		got = append(got, task.Type())
		return nil
	})
	g.mux.Handle("email:deliver", own)
	g.mux.Handle("billing:", own)
	for _, typ := range []string{"email:deliver", "billing:invoice"} {
		if err := g.run(asynq.NewTask(typ, []byte(`{}`))); err != nil {
			t.Errorf("the app's own task %s: %v, want its handler's nil", typ, err)
		}
	}
	if len(got) != 2 {
		t.Errorf("the app's handlers ran for %q, want both of its tasks", got)
	}
	if err := g.run(asynq.NewTask("nobody:s", nil)); err == nil || !strings.Contains(err.Error(), "is not rekey's") {
		t.Errorf("a type no handler takes: %v, want the error saying it is not rekey's", err)
	}
}
