package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Two runs of rotation R1 at once (a timed-out run's goroutine still
// running, I6): run A's push is slow (held on its way to Heroku until run B
// and rotation R2 have finished, however loaded the machine); run B's push
// is refused (422), its
// read-back cannot prove anything while A's push is unanswered, so the
// credential U is kept unconfirmed, as designed. Then rotation R2 pushes N
// and promotes, while A's push is still on its way and lands after R2's:
// Heroku's config then holds U, so the promotion must keep U unconfirmed
// while its push is unanswered rather than schedule its revocation (I1).
func TestUnconfirmedCredentialWithAPushStillInFlightIsNotRevokedOnNextPromotion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	// The first push to reach this front, run A's, waits here until
	// released, so the next one reaches Heroku first.
	arrived, release := g.holdFirst(t, isPatch)
	// The first push to reach Heroku, run B's, is refused; run A's, later, lands.
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(422))

	doneA := make(chan error, 1)
	go func() { doneA <- g.run(rotateTask(t, "inst-1", "rot-1")) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("run A's push never reached Heroku")
	}
	// Run B of the same rotation: its push is refused for good.
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); !isPermanent(err) {
		t.Fatalf("run B = %v, want permanent", err)
	}
	r1, _ := g.st.Rotation(ctx, "rot-1")
	if r1.Unconfirmed == "" {
		t.Fatalf("R1 = %+v, want its credential kept unconfirmed", r1)
	}
	u := r1.Unconfirmed
	// The next rotation, R2, goes through while A's push is still on its
	// way; then A's push lands.
	err := g.run(rotateTask(t, "inst-1", "rot-2"))
	close(release)
	if err != nil {
		t.Fatalf("R2 = %v", err)
	}
	select {
	case <-doneA:
	case <-time.After(30 * time.Second):
		t.Fatal("run A never finished")
	}
	held := g.configCredential(t, "inst-1")
	c, _ := g.st.Credential(ctx, "inst-1", u)
	if held != u {
		t.Skipf("Heroku holds %s, not the late-pushed %s: race not reproduced", held, u)
	}
	// Past the grace, the revoke task of U runs.
	g.later.Store(int64(2 * grace))
	if task := g.enq.get(tasks.RevokeTaskID("inst-1", u)); task != nil {
		_ = g.run(task)
	}
	c, _ = g.st.Credential(ctx, "inst-1", u)
	if c.State == store.CredentialRevoked || c.State == store.CredentialPrevious || !g.demo.Valid(u) {
		t.Errorf("Heroku's config holds %s, yet it is %s (issuer honours it: %v): the app's credential is revoked or due for revocation", u, c.State, g.demo.Valid(u))
	}
}
