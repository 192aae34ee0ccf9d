package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A front before Heroku (a proxy, an egress gateway) that answers every
// push 200 and then never sends the body, passing no push on, while
// Heroku's config reads go through: each push of a wave failed for good,
// push:unexpected_answer, its credential kept unconfirmed (I1), and nothing
// slowed the wave. The breaker does not count an answer lost on the way
// (TestPushesWhose2xxBodyBreaksOffAreNoDenials) and the feeder counted
// only failures at the issuer's steps, so the wave went on at the budget's
// pace, a mint, a push and a read-back for every instance of the fleet,
// each leaving one more live credential. A push that fails for good on an
// answer that is not Heroku's counts as the wave's failed run, as one
// answered 5xx does: ten of them, and none rotated, and the feeder slows
// the wave to a probe.
func TestAFrontStallingEveryPushsBodySlowsTheWave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	ids := g.waveOfFailingAfter(t)
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch {
			g.fake.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}), 300*time.Millisecond)

	g.runOnBulk(t, ids, func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond })
	for _, id := range ids {
		var rot store.Rotation
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var err error
			rot, err = g.st.Rotation(ctx, "rot-"+id)
			if err == nil && (rot.State == store.RotationPromoted || rot.State == store.RotationFailed) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rotation of %s not finished: %+v, %v", id, rot, err)
			}
		}
		in, _ := g.st.Instance(ctx, id)
		c, _ := g.st.Credential(ctx, id, rot.CredentialID)
		if rot.State != store.RotationFailed || in.LastErrorCode != "push:unexpected_answer" || c.State != store.CredentialUnconfirmed {
			t.Fatalf("%s: rotation %s (%s), credential %s; want failed push:unexpected_answer, kept unconfirmed (I1)",
				id, rot.State, in.LastErrorCode, c.State)
		}
		if v := g.fake.Config(id)[issuer.DefaultConfigVar]; strings.Contains(in.LastError, v) {
			t.Fatalf("%s: last error quotes the config's value: %s", id, in.LastError)
		}
	}
	h, err := pacing.ReadWaveHealth(ctx, g.rdb, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !h.Failing() {
		t.Fatalf("wave health after %d pushes answered 200 and never their body: %+v; want failing, the wave slowed to a probe",
			len(ids), h)
	}
}

// waveOfFailingAfter provisions a wave of pacing.FailingAfter instances,
// inst-1 (the rig's) and more, whose bulk runs report their outcomes to the
// wave's health (Deps.Wave), and returns their ids.
func (g *rig) waveOfFailingAfter(t *testing.T) []string {
	t.Helper()
	g.deps.Wave = pacing.NewOutcomes(g.rdb, nil)
	ids := []string{"inst-1"}
	for n := 2; n <= pacing.FailingAfter; n++ {
		id := fmt.Sprintf("inst-%d", n)
		g.provision(t, id, g.reg)
		ids = append(ids, id)
	}
	return ids
}

// runOnBulk serves the bulk queue with the rig's handlers until the test
// ends, retrying after delay, and enqueues a rotate task there for each of
// ids (rotation rot-<id>).
func (g *rig) runOnBulk(t *testing.T, ids []string, delay asynq.RetryDelayFunc) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(g.rdb, asynq.Config{Concurrency: 5, IsFailure: retry.IsFailure,
		Queues: map[string]int{tasks.QueueBulk: 1}, RetryDelayFunc: delay,
		LogLevel: asynq.FatalLevel, DelayedTaskCheckInterval: 50 * time.Millisecond, TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(g.mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	client := asynq.NewClientFromRedisClient(g.rdb)
	for _, id := range ids {
		if _, err := client.Enqueue(rotateTask(t, id, "rot-"+id), asynq.Queue(tasks.QueueBulk)); err != nil {
			t.Fatal(err)
		}
	}
}
