package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// Crash recovery rests on asynq v0.26: a worker holds a 30 s lease on each
// task it runs, and a live server's recoverer, every minute, re-queues
// tasks whose lease expired more than 30 s ago. rekey's RetryDelay runs
// such a task again after a second, without counting a failure. So a task
// orphaned by a crash runs again about 1 to 2 minutes after the crash.
const crashRecoveryDeadline = 4 * time.Minute

// TestWorkerCrash kills a `rekey worker` process (SIGKILL, no shutdown)
// while rotations are in flight and starts another: every rotation still
// completes, no rotation mints twice, Heroku sees one config change per
// rotation, and every old credential is revoked (I3, I6).
func TestWorkerCrash(t *testing.T) {
	t.Parallel()
	const n = 200
	ctx := context.Background()
	// Heroku answers slowly, so the kill finds calls in flight.
	w := newWorld(t, worldParams{fake: []herokufake.Option{herokufake.WithLatency(150 * time.Millisecond)}})
	samples := w.provision(n, sandbox.DefaultMix)
	env := w.processEnv()
	env["REKEY_CONCURRENCY"] = "10"
	first := startRekey(t, env, "worker")

	ids := make([]string, n)
	for i, s := range samples {
		ids[i] = s.ID
	}
	start := time.Now()
	res := w.rotate(ids...)
	waitFor(t, time.Minute, "first rotations", func() (bool, string) {
		b, err := w.store.Batch(ctx, res.BatchID)
		return err == nil && b.Succeeded >= 40, fmt.Sprintf("%+v, %v", b, err)
	})
	first.kill()
	killed := time.Now()
	atKill, _ := w.store.Batch(ctx, res.BatchID)
	orphans := w.orphans()
	startRekey(t, env, "worker")

	b := w.waitBatch(res.BatchID, crashRecoveryDeadline)
	rotated := time.Since(killed)
	w.waitRevoked(time.Minute)
	revoked := time.Since(killed)
	if b.Succeeded != n || b.Failed != 0 {
		t.Fatalf("batch: %d succeeded, %d failed (%v); want all %d", b.Succeeded, b.Failed, b.Failures, n)
	}
	for _, s := range samples {
		checkRotated(t, w, s)
	}
	st := w.sb.Demo.Stats()
	minted := 0
	for rot, m := range st.MintedPerRotation {
		if rot == "provision" {
			continue
		}
		minted++
		if m != 1 {
			t.Errorf("rotation %s minted %d credentials", rot, m)
		}
	}
	if minted != n {
		t.Errorf("%d rotations minted, want %d", minted, n)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("%d invariant violations at revocation, first: %s", len(v), v[0])
	}
	rerun := w.rerunRotations()
	calls := herokuCalls(w.sb.Fake, herokufake.PatchConfig, herokufake.V1Put)
	changes := 0
	for _, s := range samples {
		changes += w.sb.Fake.ConfigChanges(s.ID)
	}
	t.Logf("killed the worker %s after the request, with %d of %d rotated and %d rotate tasks orphaned (active)",
		killed.Sub(start).Round(time.Millisecond), atKill.Succeeded, n, orphans)
	t.Logf("after the kill: all rotated in %s, all old credentials revoked in %s; %d rotate tasks ran again after the crash",
		rotated.Round(time.Millisecond), revoked.Round(time.Millisecond), rerun)
	t.Logf("Heroku calls per rotation: %.2f (%d config writes, %d config changes); mint calls %d for %d credentials",
		float64(calls)/n, calls, changes, st.MintCalls-n, minted)
}

// orphans counts rotate tasks left active: their worker is gone.
func (w *world) orphans() int {
	w.t.Helper()
	infos, err := w.insp.ListActiveTasks(tasks.QueueDefault, asynq.PageSize(1000))
	if err != nil {
		w.t.Fatal(err)
	}
	return len(infos)
}

// rerunRotations counts completed rotate tasks that needed another run:
// a failure or a crash left its error on the task.
func (w *world) rerunRotations() int {
	w.t.Helper()
	n := 0
	for _, info := range w.allTasks() {
		if info.Type == tasks.TypeRotate && info.State == asynq.TaskStateCompleted && info.LastErr != "" {
			n++
		}
	}
	return n
}
