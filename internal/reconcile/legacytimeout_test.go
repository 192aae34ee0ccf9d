package reconcile_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/tasks"
)

// A revoke task an earlier version enqueued keeps its 1-minute timeout
// (tasks.LegacyRevokeTimeout) through every retry asynq gives it, and the
// revocations scheduled before an upgrade run so for a whole grace after
// it. Under an issuer too slow for that minute (20 s a call, and a DELETE
// answered 404 asks verify and a probe after it), every run was cut off
// until its 25 retries ran out, weeks with the old credential valid. Once
// such a task has failed, the sweep replaces it with one of rekey's
// current options (tasks.RevokeTimeout), run at once and then on its own
// back-off. The issuer here is slower than its client's timeout, which
// cuts its runs off as asynq's deadline would.
func TestAFailedRevokeTaskOfTheOldTimeoutGetsTheNewOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.register(t, "inst-slow")
	prev := w.promoted(t, "inst-slow", time.Millisecond) // due at once
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-time.After(2 * time.Second):
		}
		rw.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(slow.Close)
	iss, err := issuer.NewHTTP(slow.URL, secret.New("issuer-secret-for-tests"),
		issuer.WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	w.startWorker(t, iss, nil)
	w.enqueueRevoke(t, prev, prev.RevokeAt, asynq.Timeout(tasks.LegacyRevokeTimeout))
	failed := w.waitRevokeTask(t, prev, func(i *asynq.TaskInfo) bool {
		return i.State == asynq.TaskStateRetry && i.Retried == 1
	})
	if failed.Timeout != tasks.LegacyRevokeTimeout {
		t.Fatalf("the earlier version's task has a timeout of %s, want %s", failed.Timeout, tasks.LegacyRevokeTimeout)
	}

	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RevokesEnqueued != 1 {
		t.Errorf("Sweep = %+v, %v; want the failed task of the old timeout replaced", res, err)
	}
	// Run again at once, with the new timeout, and (this issuer being
	// slower than its client's timeout) failed again: then on its back-off.
	w.waitRevokeTask(t, prev, func(i *asynq.TaskInfo) bool {
		return i.Timeout == tasks.RevokeTimeout && i.MaxRetry == tasks.RevokeMaxRetry &&
			i.State == asynq.TaskStateRetry && i.Retried == 1
	})
	if res, err := w.sweep.Sweep(ctx); err != nil || res != (reconcile.Result{}) {
		t.Errorf("a second sweep = %+v, %v; want nothing done", res, err)
	}
}
