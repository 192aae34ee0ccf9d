package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// interruptWhen runs rekey args on env and sends it Ctrl-C once started
// reports true, polled every 200 µs; it returns the command's error and
// whether the Ctrl-C came before the command ended.
func interruptWhen(t *testing.T, env *environ, started func() bool, args ...string) (error, bool) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, env, args[0], args[1:]...) }()
	deadline := time.Now().Add(time.Minute)
	for !started() {
		select {
		case err := <-done:
			return err, false
		case <-time.After(200 * time.Microsecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rekey %s: what the test waits for never came", strings.Join(args, " "))
		}
	}
	cancel(&signalError{sig: os.Interrupt})
	return <-done, true
}

// Ctrl-C part-way through a command that changes many things one by one
// says how many it changed, and that running it again finishes the rest,
// rather than only that it stopped.
func TestCtrlCMidwaySaysWhatWasDone(t *testing.T) {
	ctx := context.Background()
	t.Run("revocations retry --all", func(t *testing.T) {
		c := newCLI(t)
		const n = 300
		for i := range n {
			c.deadRevocation(t, instanceID(i))
		}
		err, interrupted := interruptWhen(t, c.env(), func() bool {
			k, _ := c.st.CountDeadRevocations(ctx)
			return k < n-5
		}, "revocations", "retry", "--all")
		left, _ := c.st.CountDeadRevocations(ctx)
		if !interrupted || err == nil {
			t.Skipf("the command finished before the Ctrl-C (err %v): nothing to check", err)
		}
		want := "interrupted: " + count(n-int(left), "dead revocation", "dead revocations") +
			" moved back to due; run it again for the rest"
		if _, ok := asInterrupted(err); !ok || err.Error() != want {
			t.Errorf("retry --all interrupted with %d left: %v, want %q", left, err, want)
		}
	})
	t.Run("revocations retry ID...", func(t *testing.T) {
		c := newCLI(t)
		const n = 300
		args := []string{"revocations", "retry"}
		for i := range n {
			c.deadRevocation(t, instanceID(i))
			args = append(args, instanceID(i)+"/cred-0")
		}
		err, interrupted := interruptWhen(t, c.env(), func() bool {
			k, _ := c.st.CountDeadRevocations(ctx)
			return k < n-5
		}, args...)
		left, _ := c.st.CountDeadRevocations(ctx)
		if !interrupted || err == nil {
			t.Skipf("the command finished before the Ctrl-C (err %v): nothing to check", err)
		}
		// The ids named again are those still dead: a retry of them runs.
		rest := "rekey revocations retry " + strings.Join(args[2+n-int(left):], " ")
		want := "interrupted: " + count(n-int(left), "dead revocation", "dead revocations") + " moved back to due; the rest: " + rest
		if _, ok := asInterrupted(err); !ok || err.Error() != want {
			t.Fatalf("retry of %d named interrupted with %d left: %v, want %q", n, left, err, want)
		}
		if err := c.run(t, strings.Fields(rest)[1], strings.Fields(rest)[2:]...); err != nil {
			t.Errorf("%s: %v", rest, err)
		}
		if k, _ := c.st.CountDeadRevocations(ctx); k != 0 {
			t.Errorf("%d dead revocations left after retrying the rest", k)
		}
	})
	t.Run("scheduler unquarantine --all", func(t *testing.T) {
		g := newSchedulerRig(t)
		if _, err := g.st.SetSchedulePolicy(ctx, store.SchedulePolicy{Period: time.Hour, QuarantineAfter: 1}); err != nil {
			t.Fatal(err)
		}
		const n = 400
		for i := range n {
			id := instanceID(i)
			g.register(t, id)
			if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: id, RotationID: "sch-" + id, Reason: store.ReasonScheduled}); err != nil {
				t.Fatal(err)
			}
			if _, err := g.st.Fail(ctx, id, "sch-"+id, "mint:issuer_422", "issuer mint: status 422"); err != nil {
				t.Fatal(err)
			}
		}
		env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
			stdin: strings.NewReader(""), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
		err, interrupted := interruptWhen(t, env, func() bool {
			_, k, _ := g.st.Quarantined(ctx, 1)
			return k < n-5
		}, "scheduler", "unquarantine", "--all")
		_, left, _ := g.st.Quarantined(ctx, 1)
		if !interrupted || err == nil {
			t.Skipf("the command finished before the Ctrl-C (err %v): nothing to check", err)
		}
		want := "interrupted: " + instances(n-int(left)) + " unquarantined; run it again for the rest"
		if _, ok := asInterrupted(err); !ok || err.Error() != want {
			t.Errorf("unquarantine --all interrupted with %d left: %v, want %q", left, err, want)
		}
	})
	t.Run("batches cancel", func(t *testing.T) {
		c := newCLI(t)
		id, _ := startBatch(t, c, 3000)
		err, interrupted := interruptWhen(t, c.env(), func() bool {
			b, _ := c.st.Batch(ctx, id)
			return !b.CancelledAt.IsZero()
		}, "batches", "cancel", id)
		if !interrupted || err == nil {
			t.Skipf("the command finished before the Ctrl-C (err %v): nothing to check", err)
		}
		want := "interrupted: batch " + id + " is marked cancelled, but not every task of it was removed: " +
			"run 'rekey batches cancel " + id + "' again"
		if _, ok := asInterrupted(err); !ok || err.Error() != want {
			t.Errorf("batches cancel interrupted: %v, want %q", err, want)
		}
	})
}
