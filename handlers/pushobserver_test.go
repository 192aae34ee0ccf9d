package handlers_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/tasks"
)

// pushObserver records what a handlers.PushObserver hears.
type pushObserver struct {
	mu       sync.Mutex
	outcomes []string
	landed   []time.Duration
}

func (o *pushObserver) Rotation(_, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes = append(o.outcomes, outcome)
}

func (o *pushObserver) Revocation(string, time.Duration) {}

func (o *pushObserver) PushLanded(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.landed = append(o.landed, d)
}

func TestAcceptedPushReportsTimeSinceRequest(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	obs := &pushObserver{}
	g.deps.Observer = obs
	requested := time.Now().Add(-5 * time.Minute)
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_timed", RequestedAt: requested})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.run(task); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	// A rerun finds the rotation done and pushes nothing.
	if err := g.run(task); err != nil {
		t.Fatalf("rotate again: %v", err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.landed) != 1 || obs.landed[0] < 5*time.Minute || obs.landed[0] > 6*time.Minute {
		t.Fatalf("PushLanded heard %v; want one duration of about 5m", obs.landed)
	}
	if len(obs.outcomes) != 2 || obs.outcomes[0] != "rotated" {
		t.Errorf("Rotation heard %v; want rotated, then already_done", obs.outcomes)
	}
}

// issuerObserver records what a handlers.IssuerObserver hears.
type issuerObserver struct {
	pushObserver
	calls []string
}

func (o *issuerObserver) IssuerCall(op string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, fmt.Sprintf("%s:%v", op, err == nil))
}

// Every call to the issuer is heard with how it ended, a rotation's mint
// and verify and its old credential's revocation, so that the metrics can
// tell the issuer's trouble from Heroku's; a run that waits calls nothing.
func TestIssuerCallsAreHeard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	obs := &issuerObserver{}
	g.deps.Observer = obs
	before, _ := g.st.Instance(ctx, "inst-1")
	if err := g.run(rotateTask(t, "inst-1", "rot_heard")); err != nil {
		t.Fatal(err)
	}
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	_ = g.run(revoke) // before its revoke time: waits, calls nothing
	g.later.Store(int64(grace + time.Second))
	if err := g.run(revoke); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if want := []string{"mint:true", "verify:true", "revoke:true"}; !slices.Equal(obs.calls, want) {
		t.Errorf("heard %v, want %v", obs.calls, want)
	}
}
