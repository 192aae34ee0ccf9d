package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestACurrentCredentialWithAPushStillInFlightIsNotRevoked: rotation R1
// pushes U twice: the first push (run A, a timed-out run's request, or one
// a router answered 5xx while Heroku still holds it) is still on its way
// when the second (run B) lands and promotes U. R2 follows within the
// unanswered-push window (an operator's wave, a customer's click): it
// pushes N and promotes. Then A's push lands, and Heroku's config holds U
// again. U was set aside as unconfirmed at R2's promotion, as a failed
// rotation's credential with an unanswered push is, rather than made
// previous: it is never revoked while the apps may run on it (I1).
func TestACurrentCredentialWithAPushStillInFlightIsNotRevoked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	arrived, release := g.holdFirst(t, isPatch)

	doneA := make(chan error, 1)
	go func() { doneA <- g.run(rotateTask(t, "inst-1", "rot-1")) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("run A's push never reached Heroku")
	}
	// Run B of R1 lands and promotes U.
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err != nil {
		t.Fatalf("run B = %v", err)
	}
	r1, _ := g.st.Rotation(ctx, "rot-1")
	u := r1.CredentialID
	// R2 within the window: N promoted, U made previous.
	if err := g.run(rotateTask(t, "inst-1", "rot-2")); err != nil {
		t.Fatalf("R2 = %v", err)
	}
	close(release)
	select {
	case <-doneA:
	case <-time.After(30 * time.Second):
		t.Fatal("run A never finished")
	}
	if held := g.configCredential(t, "inst-1"); held != u {
		t.Fatalf("Heroku holds %s, not the late-pushed %s: the test did not play the late push", held, u)
	}
	g.later.Store(int64(2 * grace))
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", u)); task != nil {
		_ = g.run(task)
	}
	c, _ := g.st.Credential(ctx, "inst-1", u)
	if c.State != store.CredentialUnconfirmed {
		t.Errorf("%s is %s after R2's promotion, want unconfirmed", u, c.State)
	}
	if c.State == store.CredentialRevoked || !g.demo.Valid(u) {
		t.Errorf("Heroku's config holds %s (R1's unanswered push landed after R2's), yet it is %s, issuer honours it: %v", u, c.State, g.demo.Valid(u))
	}
}
