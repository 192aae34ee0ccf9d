package reconcile_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/worker"
	"github.com/rekeyhq/rekey/tasks"
)

// A customer's "revoke now" that lands while the revocation's task runs
// before its revoke time (on a worker whose clock is ahead, or run by hand)
// finds the task active, and the dashboard leaves it to the sweep
// (TryRevokeNow). That run read the old revoke time: it goes back to
// asynq's retry set to wait for it, up to the whole grace, not to the
// scheduled set. The sweep runs it there too, and the leaked credential is
// revoked minutes after the click, not at its old revoke time.
func TestSweepRunsARevocationExpeditedWhileItsEarlyRunWasActive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	r := w.rotated(t, "inst-x") // due in an hour
	clicks := w.startWorker(t, issuer.NewDemo(), r)
	w.enqueueRevoke(t, r, r.RevokeAt, asynq.ProcessIn(0))
	click := clicks.wait(t)
	if click.done != "" {
		t.Fatalf("revoke now during the task's run: TryRevokeNow = %q, want \"\" (left to the sweep)", click.done)
	}
	info := w.waitRevokeTask(t, r, func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateRetry })
	if !info.NextProcessAt.After(click.rev.RevokeAt.Add(30 * time.Minute)) {
		t.Fatalf("the early run waits until %s; want about the old revoke time %s", info.NextProcessAt, r.RevokeAt)
	}

	w.now = click.rev.RevokeAt.Add(3 * time.Minute) // past the sweep's slack
	res, err := w.sweep.Sweep(ctx)
	if err != nil || res.RevokesExpedited != 1 {
		t.Fatalf("Sweep = %+v, %v; want the expedited revocation's waiting task run", res, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := w.st.Credential(ctx, r.InstanceID, r.CredentialID)
		if err == nil && c.Revoked() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expedited credential is %s (%v) after the sweep, want revoked", c.State, err)
		}
	}
}

// The sweep runs a retrying revoke task early only when it waits for a
// revoke time since brought forward. One that retries because the issuer
// fails waits out its back-off, expedited or not: an issuer that is down
// with thousands of due revocations must not be sent all of them again at
// every sweep. That holds for a task that first waited for its old revoke
// time, was run by the sweep once expedited, and then failed: the wait its
// early run noted is not what it waits for now.
func TestSweepLeavesAFailingRevocationToItsBackOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		early bool // the task first runs before its revoke time, and is expedited meanwhile
	}{
		{"failing from its first run", false},
		{"failing once run after its early wait", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			w := newWorld(t)
			r := w.rotated(t, "inst-f")
			var deletes atomic.Int32
			down := issuer.NewDemo(issuer.WithRevokeFault(func(string, string) error {
				deletes.Add(1)
				return &issuer.Error{Op: "revoke", Status: http.StatusServiceUnavailable, Code: "service_unavailable"}
			}))
			var due time.Time
			if tc.early {
				clicks := w.startWorker(t, down, r)
				w.enqueueRevoke(t, r, r.RevokeAt, asynq.ProcessIn(0))
				due = clicks.wait(t).rev.RevokeAt
				w.waitRevokeTask(t, r, func(i *asynq.TaskInfo) bool { return i.State == asynq.TaskStateRetry })
				w.now = due.Add(3 * time.Minute)
				if res, err := w.sweep.Sweep(ctx); err != nil || res.RevokesExpedited != 1 {
					t.Fatalf("Sweep = %+v, %v; want the expedited revocation's waiting task run", res, err)
				}
			} else {
				rev, err := w.st.ExpediteRevocation(ctx, r.InstanceID, r.CredentialID, store.ExpeditedByCustomer)
				if err != nil {
					t.Fatal(err)
				}
				due = rev.RevokeAt
				w.startWorker(t, down, nil)
				w.enqueueRevoke(t, r, due)
			}
			failed := w.waitRevokeTask(t, r, func(i *asynq.TaskInfo) bool {
				return i.State == asynq.TaskStateRetry && i.Retried == 1
			})

			for _, after := range []time.Duration{3 * time.Minute, 30 * time.Minute} {
				w.now = due.Add(after)
				res, err := w.sweep.Sweep(ctx)
				if err != nil || res != (reconcile.Result{}) {
					t.Errorf("sweep %s after the expedite = %+v, %v; want nothing done", after, res, err)
				}
				info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, failed.ID)
				if err != nil || info.State != asynq.TaskStateRetry || info.Retried != 1 ||
					!info.NextProcessAt.Equal(failed.NextProcessAt) {
					t.Fatalf("sweep %s after the expedite: revoke task %+v (%v); want it left retrying at %s",
						after, info, err, failed.NextProcessAt)
				}
			}
			if n := deletes.Load(); n != 1 {
				t.Errorf("the issuer was asked to revoke %d times, want once", n)
			}
		})
	}
}

// click is a customer's "revoke now" made while a revoke task runs: the
// expedited revocation and what TryRevokeNow did with the task.
type click struct {
	rev  store.Revocation
	done reconcile.RevokeTask
	err  error
}

// clicks carries the one click a worker makes.
type clicks chan click

// wait returns the click, failing the test when none came.
func (c clicks) wait(t *testing.T) click {
	t.Helper()
	select {
	case got := <-c:
		if got.err != nil {
			t.Fatalf("revoke now during the task's run: %v", got.err)
		}
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("the revoke task did not run")
	}
	return click{}
}

// startWorker runs revoke tasks until the test ends, as `rekey worker`
// does (handlers.NewMux in worker.New, which records retry marks), with iss
// as the issuer and a short poll. A failed run waits an hour, the back-off
// a persistent outage reaches; the seconds of the first fast retries would
// run it again within the test. When during is not nil, the customer
// clicks "revoke now" for it once, as the task's first run returns and
// asynq still has the task active; the click is sent on the channel
// returned.
func (w *world) startWorker(t *testing.T, iss issuer.Issuer, during *store.Revocation) clicks {
	t.Helper()
	hc, err := heroku.NewClient() // a revocation calls no Heroku API
	if err != nil {
		t.Fatal(err)
	}
	mux, err := handlers.NewMux(&handlers.Deps{Store: w.st, Heroku: hc, Issuer: iss, Enqueuer: w.q})
	if err != nil {
		t.Fatal(err)
	}
	out := make(clicks, 1)
	var once sync.Once
	h := asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		err := mux.ProcessTask(ctx, task)
		if during != nil {
			once.Do(func() { out <- w.revokeNow(ctx, *during) })
		}
		return err
	})
	wk, err := worker.New(worker.Params{Redis: w.r.Client, Handler: h, Logger: zerolog.Nop(),
		PollInterval: 50 * time.Millisecond, RetryDelay: func(n int, err error, task *asynq.Task) time.Duration {
			if retry.IsLater(err) {
				return retry.Delay(n, err, task)
			}
			return time.Hour
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := wk.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

// revokeNow is the dashboard's "revoke now" for r: the store's expedite,
// then one look at the task.
func (w *world) revokeNow(ctx context.Context, r store.Revocation) click {
	rev, moved, err := w.st.Expedite(ctx, r.InstanceID, r.CredentialID, store.ExpeditedByCustomer)
	switch {
	case err != nil:
		return click{err: err}
	case !moved:
		return click{err: errors.New("the expedite did not move the revoke time")}
	}
	p := reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: w.insp, Logger: zerolog.Nop()}
	done, err := reconcile.TryRevokeNow(ctx, p, rev)
	return click{rev: rev, done: done, err: err}
}

// waitRevokeTask polls r's revoke task until ok says it is where the test
// wants it, and returns it.
func (w *world) waitRevokeTask(t *testing.T, r *store.Revocation, ok func(*asynq.TaskInfo) bool) *asynq.TaskInfo {
	t.Helper()
	id := tasks.RevokeTaskID(r.InstanceID, r.CredentialID)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, id)
		if err == nil && ok(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoke task of %s: %+v (%v), not there yet", r.CredentialID, info, err)
		}
	}
}
