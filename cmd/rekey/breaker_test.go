package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// breakerCmd runs `rekey breaker args...` and returns its standard output
// and error.
func (g *schedulerRig) breakerCmd(args ...string) (string, error) {
	var out, errOut lockedBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
		stdin: strings.NewReader("y\n"), stdout: &out, stderr: &errOut}
	err := runCommand(context.Background(), env, "breaker", args...)
	return out.String() + errOut.String(), err
}

// openBreaker opens the breaker as workers would, with three 403s and a
// 401, and pauses the bulk queue as the opening worker does.
func (g *schedulerRig) openBreaker(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p := store.BreakerPolicy{Threshold: 4, Fraction: 0.5, Window: time.Minute}
	for i, status := range []int{0, store.DeniedForbidden, store.DeniedForbidden, store.DeniedUnauthorized, store.DeniedForbidden} {
		if _, err := g.st.ObserveBreaker(ctx, instanceID(i), status, p); err != nil {
			t.Fatal(err)
		}
	}
	task, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-w", RotationID: "rot-w"}, asynq.Queue(tasks.QueueBulk))
	if _, err := asynq.NewClientFromRedisClient(g.r.Client).Enqueue(task); err != nil {
		t.Fatal(err)
	}
	if err := asynq.NewInspectorFromRedisClient(g.r.Client).PauseQueue(tasks.QueueBulk); err != nil {
		t.Fatal(err)
	}
}

func TestBreakerStatusAndResume(t *testing.T) {
	t.Parallel()
	g := newSchedulerRig(t)
	g.openBreaker(t)
	reason := "reason: 4 of 5 distinct instances answered 401 unauthorized (1) or 403 forbidden (3) within "
	resume := "; resume with `rekey breaker resume`"
	wantLines(t, g.run(t, "status"), "state:              held: the circuit breaker is open",
		"breaker:            OPEN since ", reason, resume)

	out, err := g.breakerCmd("status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rekey breaker status:\n%s", out)
	wantLines(t, out, "breaker:    OPEN since ", reason, resume, "bulk queue: paused", "openings:   1",
		"policy:     opens at 10 distinct instances answering 401, 403 or not as Heroku answers (a 2xx without the config, a redirect, a 4xx without Heroku's error id), at least 0.5 of those answered, within 5m")

	out, err = g.breakerCmd("status", "--json")
	var s breaker.Status
	if err != nil || json.Unmarshal([]byte(out), &s) != nil || !s.Open || !s.BulkPaused || s.Window.Denied != 4 ||
		!strings.HasPrefix(s.Reason, "4 of 5 distinct instances") {
		t.Fatalf("breaker status --json = %v\n%s", err, out)
	}

	// Off a terminal, only --confirm resumes: piped input is no answer.
	if _, err := g.breakerCmd("resume"); !isUsage(err) {
		t.Fatalf("resume without --confirm = %v, want it refused", err)
	}
	if st, _ := g.st.BreakerState(context.Background()); !st.Open() {
		t.Fatal("an unconfirmed resume closed the breaker")
	}
	// --by is a name: one with a line break is refused before anything changes.
	if _, err := g.breakerCmd("resume", "--confirm", "--by", "alice\nbob"); !isUsage(err) || !strings.Contains(err.Error(), "--by") {
		t.Fatalf("resume --by with a line break = %v, want it refused", err)
	}
	if st, _ := g.st.BreakerState(context.Background()); !st.Open() {
		t.Fatal("a resume refused for its --by closed the breaker")
	}
	// An operator's pause of the scheduler outlives the breaker: the
	// resume says so rather than that the scheduler enqueues again.
	g.run(t, "pause", "--by", "carol")
	if out, err := g.breakerCmd("resume", "--confirm", "--by", "alice"); err != nil ||
		!strings.Contains(out, "breaker resumed: the bulk queue runs; the scheduler stays paused (by carol since ") ||
		strings.Contains(out, "enqueues again") {
		t.Fatalf("resume --confirm with the scheduler paused = %v\n%s", err, out)
	}
	g.run(t, "resume")
	out, _ = g.breakerCmd("status")
	wantLines(t, out, "breaker:    closed", "bulk queue: running", "openings:   1; last resumed ", "by alice")
	wantLines(t, g.run(t, "status"), "breaker:            closed")
	if out, err := g.breakerCmd("resume"); err != nil || !strings.Contains(out, "nothing to resume") {
		t.Fatalf("resume of a closed breaker = %v\n%s", err, out)
	}
}

// TestBreakerStatusNamesEveryDenial checks that the window and policy lines
// of rekey breaker status name every answer the breaker counts as a denial:
// a redirect and a 4xx without Heroku's error id (an egress proxy's 404
// page) count with the 401s, 403s and 2xx without a config, so a window
// filling with them is not read as unexplained.
func TestBreakerStatusNamesEveryDenial(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	writeBreakerStatus(&out, breaker.Status{Window: breaker.WindowStatus{Denied: 3, Answered: 4},
		Policy: breaker.PolicyStatus{Threshold: 10, Fraction: 0.5, Window: "5m0s"}})
	for _, label := range []string{"window now:", "policy:"} {
		var line string
		for l := range strings.Lines(out.String()) {
			if strings.HasPrefix(l, label) {
				line = l
			}
		}
		for _, want := range []string{"401", "403", "2xx", "redirect", "4xx without Heroku's error id"} {
			if !strings.Contains(line, want) {
				t.Errorf("the %q line does not name %q:\n%s", label, want, out.String())
			}
		}
	}
}
