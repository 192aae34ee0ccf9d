package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// pauseBulk pauses the bulk queue, as an opening breaker does when open,
// else as an operator does with asynq's CLI. asynq pauses only a queue it
// knows, one that held a task: a worker's earlier wave left one.
func (c *cli) pauseBulk(t *testing.T, open bool) {
	t.Helper()
	ctx := context.Background()
	if open {
		p := store.BreakerPolicy{Threshold: 2, Fraction: 0.5, Window: time.Minute}
		for i := range 2 {
			if _, err := c.st.ObserveBreaker(ctx, "denied-"+instanceID(i), store.DeniedForbidden, p); err != nil {
				t.Fatal(err)
			}
		}
		if st, err := c.st.BreakerState(ctx); err != nil || !st.Open() {
			t.Fatalf("the breaker did not open: %v", err)
		}
	}
	task, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-w", RotationID: "rot-w"}, asynq.Queue(tasks.QueueBulk))
	if _, err := asynq.NewClientFromRedisClient(c.r.Client).Enqueue(task); err != nil {
		t.Fatal(err)
	}
	if err := asynq.NewInspectorFromRedisClient(c.r.Client).PauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
}

// TestRotateAllWarnsOfPausedBulkQueue: rotate --all on a paused bulk queue
// still enqueues, and warns on stderr naming the pause and how to resume.
func TestRotateAllWarnsOfPausedBulkQueue(t *testing.T) {
	for _, tt := range []struct {
		name string
		open bool
		want []string
	}{
		{"breaker open", true, []string{"warning: the bulk queue is paused, so none of these 3 rotations starts until it is resumed",
			"the circuit breaker is OPEN since ", "resume with `rekey breaker resume`"}},
		{"paused by hand", false, []string{"warning: the bulk queue is paused, so none of these 3 rotations starts until it is resumed",
			"paused by hand", "resume it with `rekey breaker resume`"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			ids := c.register(t, 3)
			if err := c.run(t, "rotate", "--all", "--confirm"); err != nil || strings.Contains(c.stderr.String(), "warning") {
				t.Fatalf("a running bulk queue: err %v, stderr:\n%s", err, c.stderr)
			}
			c.complete(t, ids, nil)
			c.pauseBulk(t, tt.open)
			if err := c.run(t, "rotate", "--all", "--confirm"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.stdout.String(), "3 enqueued on bulk") {
				t.Errorf("stdout: %s", c.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(c.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, c.stderr)
				}
			}
		})
	}
}

// TestRotateWaitSaysItWaitsForThePause: rotate --all --wait on a paused
// bulk queue says what it waits for, and says when the queue runs again.
func TestRotateWaitSaysItWaitsForThePause(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	c.pauseBulk(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runCommand(ctx, c.env(), "rotate", "--all", "--confirm", "--wait", "--interval", "100ms")
	}()
	c.waitFor(t, "the waiting line", func() bool {
		return strings.Contains(c.stderr.String(), "waiting: the bulk queue is paused, so its rotations do not start: the circuit breaker is OPEN since")
	})
	if err := runCommand(ctx, &environ{lookup: c.env().lookup, stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &syncBuffer{}},
		"breaker", "resume", "--confirm"); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "the running line", func() bool { return strings.Contains(c.stderr.String(), "the bulk queue runs again") })
	c.complete(t, ids, nil)
	c.waitEnded(t, done)
	if strings.Count(c.stderr.String(), "waiting:") != 1 {
		t.Errorf("the waiting line is repeated:\n%s", c.stderr)
	}
	t.Logf("stderr:\n%s", c.stderr)
}

// TestRotateWaitSaysWhenTheWaveIsSlowed: rotate --all --wait says when the
// wave's rotations all fail, so that the feeder releases a probe at a time,
// and when one goes through again, rather than show a bar that stands still.
func TestRotateWaitSaysWhenTheWaveIsSlowed(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	outcomes := pacing.NewOutcomes(c.r.Client, nil)
	for range pacing.FailingAfter {
		outcomes.Record(t.Context(), false, false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runCommand(ctx, c.env(), "rotate", "--all", "--confirm", "--wait", "--interval", "100ms")
	}()
	c.waitFor(t, "the slowed line", func() bool {
		return strings.Contains(c.stderr.String(), "slowed: 10 or more runs of the wave's rotations failed in the last minute "+
			"and none rotated (the issuer or Heroku failing")
	})
	outcomes.Record(t.Context(), true, false)
	c.waitFor(t, "the going line", func() bool {
		return strings.Contains(c.stderr.String(), "a rotation went through: the wave goes at the budget's pace again")
	})
	c.complete(t, ids, nil)
	c.waitEnded(t, done)
	if strings.Count(c.stderr.String(), "slowed:") != 1 {
		t.Errorf("the slowed line is repeated:\n%s", c.stderr)
	}
}

// TestRotateWaitSaysNoWorkerRuns: rotate --wait with no `rekey worker`
// running says so once the batch has not moved for a few seconds, instead of
// sitting silent for ever, and says when a worker shows up.
func TestRotateWaitSaysNoWorkerRuns(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runCommand(ctx, c.env(), "rotate", ids[0], "--wait", "--interval", "100ms")
	}()
	const noWorker = "no `rekey worker` is running: asynq lists no worker polling rekey's queues"
	deadline := time.Now().Add(3 * workerCheckAfter)
	for !strings.Contains(c.stderr.String(), noWorker) {
		if time.Now().After(deadline) {
			t.Fatalf("rotate --wait with no worker said nothing:\n%s", c.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A worker's server polls the interactive queue: its heartbeat lists it.
	srv := asynq.NewServerFromRedisClient(c.r.Client, asynq.Config{Queues: map[string]int{tasks.QueueInteractive: 1},
		Concurrency: 1, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	c.waitFor(t, "the worker line", func() bool { return strings.Contains(c.stderr.String(), "a `rekey worker` is running again") })
	c.complete(t, ids, nil)
	c.waitEnded(t, done)
	if strings.Count(c.stderr.String(), noWorker) != 1 {
		t.Errorf("the no-worker line is repeated:\n%s", c.stderr)
	}
}

// `rotate --all --queue default` (an operator reading "default" as "the
// usual choice") puts the fleet where the pacing feeder does not meter it
// and the circuit breaker does not pause it: it is enqueued, as asked, with
// a warning saying so, and naming the open breaker. A handful of ids on
// the default queue, where they go without --queue, draws no warning.
func TestAFleetOnTheDefaultQueueIsWarnedOf(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	c.register(t, 20)
	p := store.BreakerPolicy{Threshold: 4, Fraction: 0.5, Window: time.Minute}
	for i, status := range []int{store.DeniedForbidden, store.DeniedForbidden, store.DeniedUnauthorized, store.DeniedForbidden} {
		if _, err := c.st.ObserveBreaker(ctx, instanceID(100+i), status, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := asynq.NewInspectorFromRedisClient(c.r.Client).PauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", instanceID(0), instanceID(1), instanceID(2), "--reason", "INC-2"); err != nil {
		t.Fatalf("rotate 3 ids: %v\n%s", err, c.stderr)
	}
	if strings.Contains(c.stderr.String(), "default queue") {
		t.Errorf("3 ids on the default queue drew a warning:\n%s", c.stderr)
	}
	c.stderr.Reset()
	if err := c.run(t, "rotate", "--all", "--queue", "default", "--confirm", "--reason", "INC-2"); err != nil {
		t.Fatalf("rotate --all --queue default: %v\n%s", err, c.stderr)
	}
	said := c.stderr.String()
	for _, want := range []string{"warning: 17 rotations on the default queue", "the circuit breaker does not pause them",
		"--queue bulk", "the circuit breaker is OPEN"} {
		if !strings.Contains(said, want) {
			t.Errorf("stderr lacks %q:\n%s", want, said)
		}
	}
}

// The slowed wave's --wait line says a rotation went through only when one
// did: failures that merely stopped (the bulk queue paused, the workers
// gone, the wave's last rotation released) say nothing of the issuer's or
// Heroku's recovery, and an operator reading "went through" would take the
// outage for over.
func TestSlowedLineSaysARotationWentThroughOnlyWhenOneDid(t *testing.T) {
	h := pacing.WaveHealth{Failed: pacing.FailingAfter}
	w := &pauseWatch{failing: func(context.Context) (pacing.WaveHealth, error) { return h, nil }}
	if line := w.slowedLine(t.Context()); !strings.HasPrefix(line, "slowed:") {
		t.Fatalf("failing: %q, want the slowed line", line)
	}
	h = pacing.WaveHealth{} // two minutes without a failed run, nor a rotation
	line := w.slowedLine(t.Context())
	if line == "" || strings.Contains(line, "a rotation went through") {
		t.Errorf("no rotation and no failure: %q, want a line that claims no rotation went through", line)
	}
	h = pacing.WaveHealth{Failed: pacing.FailingAfter}
	_ = w.slowedLine(t.Context())
	h = pacing.WaveHealth{Failed: pacing.FailingAfter, Rotated: 1}
	if line := w.slowedLine(t.Context()); !strings.Contains(line, "a rotation went through") {
		t.Errorf("after a rotation: %q, want it to say a rotation went through", line)
	}
}

// A wave kept slowed by its probes failing one after the other (fewer than
// FailingAfter runs in the minute) is said to be so, not to have had ten
// runs fail in the last minute.
func TestSlowedLineOfAStreakCountsTheStreak(t *testing.T) {
	h := pacing.WaveHealth{Failed: 3, Streak: 14}
	if !h.Failing() {
		t.Fatalf("%+v is not failing", h)
	}
	w := &pauseWatch{failing: func(context.Context) (pacing.WaveHealth, error) { return h, nil }}
	line := w.slowedLine(t.Context())
	if !strings.Contains(line, "the first runs of 14 of the wave's rotations failed one after the other") {
		t.Errorf("a streak of 14 with 3 failed runs in the minute: %q, want the streak named", line)
	}
}

// TestAHandPausedBulkQueueIsResumedByTheCommandOnly: /monitoring is read
// only (rekey web answers 405 to its pause and resume, as to every other
// change), so the warning on a bulk queue paused by hand names the one way
// that works, `rekey breaker resume`, and does not send an operator in the
// middle of a wave to /monitoring to resume it.
func TestAHandPausedBulkQueueIsResumedByTheCommandOnly(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	if err := c.run(t, "rotate", "--all", "--confirm"); err != nil {
		t.Fatal(err)
	}
	c.complete(t, ids, nil)
	c.pauseBulk(t, false)
	if err := c.run(t, "rotate", "--all", "--confirm"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.stderr.String(), "resume it with `rekey breaker resume`") {
		t.Errorf("stderr does not name rekey breaker resume:\n%s", c.stderr)
	}
	if strings.Contains(c.stderr.String(), "/monitoring") {
		t.Errorf("stderr names /monitoring, which cannot resume a queue:\n%s", c.stderr)
	}
}
