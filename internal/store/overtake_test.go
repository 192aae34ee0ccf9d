package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A request on another queue moves a wave's rotation it joins only while
// no task has started it: once the wave's bulk task resumed it (its claim
// came before the request's, and it mints, still requested, until the
// issuer answers), a move would enqueue a second task of the rotation
// that runs beside the first, minting, verifying and pushing it again.
// The request joins it instead; a rotation no task has started yet moves,
// and so does one whose task's claim is older than any run of it lasts
// (tasks.RotateTimeout): that task waits in asynq's retry set, perhaps
// behind a paused bulk queue, and finds the move at its next claim.
func TestARequestDoesNotMoveARotationItsBulkTaskStarted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-started", "cred-0")
	f.register(t, "inst-held", "cred-0")
	if err := f.st.CreateBatch(ctx, "bat-wave", "wave", 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"inst-started", "inst-held"} {
		req := store.RotationRequest{InstanceID: id, RotationID: "rot-wave-" + id, BatchID: "bat-wave", Queue: "bulk"}
		if c := f.st.ClaimMany(ctx, []store.RotationRequest{req})[0]; c.Err != nil || c.Claim.Status != store.Claimed {
			t.Fatalf("wave's claim of %s: %+v", id, c)
		}
	}
	// The bulk task the feeder released for inst-started runs: its claim
	// resumes the rotation, and it goes on to mint.
	task := store.RotationRequest{InstanceID: "inst-started", RotationID: "rot-wave-inst-started", BatchID: "bat-wave", Queue: "bulk"}
	if c, err := f.st.Claim(ctx, task); err != nil || c.Status != store.Resumed || c.Queue != "bulk" {
		t.Fatalf("bulk task's claim: %+v, %v; want it resumed on the bulk queue", c, err)
	}
	for _, c := range []struct {
		id        string
		wantMoved bool
	}{{"inst-started", false}, {"inst-held", true}} {
		click := store.RotationRequest{InstanceID: c.id, RotationID: "rot-click-" + c.id, BatchID: "bat-click-" + c.id,
			Queue: "interactive", Overtakes: "bulk"}
		got, err := f.st.Claim(ctx, click)
		if err != nil || got.Status != store.Joined || got.Moved != c.wantMoved {
			t.Errorf("click on %s: %+v, %v; want joined, moved %v", c.id, got, err, c.wantMoved)
		}
		want := map[bool]string{true: "interactive", false: "bulk"}[c.wantMoved]
		if rot, err := f.st.Rotation(ctx, "rot-wave-"+c.id); err != nil || rot.Queue != want {
			t.Errorf("wave's rotation of %s on %q (%v); want it on %s", c.id, rot.Queue, err, want)
		}
	}
	// Its run over (the task waits for a retry), the rotation moves.
	f.now = f.now.Add(tasks.RotateTimeout)
	click := store.RotationRequest{InstanceID: "inst-started", RotationID: "rot-click-late", BatchID: "bat-click-late",
		Queue: "interactive", Overtakes: "bulk"}
	if got, err := f.st.Claim(ctx, click); err != nil || got.Status != store.Joined || !got.Moved {
		t.Errorf("click once the bulk task's run is over: %+v, %v; want joined and moved", got, err)
	}
	if c, err := f.st.Claim(ctx, task); err != nil || c.Status != store.Resumed || c.Queue != "interactive" {
		t.Errorf("bulk task's retry: %+v, %v; want it to find the rotation moved", c, err)
	}
}

// A wave's rotation that a customer's or an operator's request moved to
// its queue is that request's rotation too: cancelling the wave before the
// moved rotation's task runs must not cancel it, or the request that was
// answered "joined" would end with its instance not rotated. The wave's
// rotations nobody else asked for are still cancelled.
func TestCancellingAWaveKeepsTheRotationARequestMoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-clicked", "cred-0")
	f.register(t, "inst-waiting", "cred-0")
	if err := f.st.CreateBatch(ctx, "bat-wave", "wave", 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"inst-clicked", "inst-waiting"} {
		req := store.RotationRequest{InstanceID: id, RotationID: "rot-wave-" + id, BatchID: "bat-wave", Queue: "bulk"}
		if c := f.st.ClaimMany(ctx, []store.RotationRequest{req})[0]; c.Err != nil || c.Claim.Status != store.Claimed {
			t.Fatalf("wave's claim of %s: %+v", id, c)
		}
	}
	click := store.RotationRequest{InstanceID: "inst-clicked", RotationID: "rot-click", BatchID: "bat-click",
		Queue: "interactive", Overtakes: "bulk"}
	if got, err := f.st.Claim(ctx, click); err != nil || got.Status != store.Joined || !got.Moved {
		t.Fatalf("click: %+v, %v; want joined and moved", got, err)
	}
	if err := f.st.CancelBatch(ctx, "bat-wave"); err != nil {
		t.Fatal(err)
	}
	// The moved rotation's task, on the click's queue, runs after the cancel.
	task := store.RotationRequest{InstanceID: "inst-clicked", RotationID: "rot-wave-inst-clicked", BatchID: "bat-wave", Queue: "interactive"}
	if c, err := f.st.Claim(ctx, task); err != nil || c.Status != store.Resumed {
		t.Errorf("moved rotation's task after the wave was cancelled: %+v, %v; want it resumed", c, err)
	}
	// Another request for the clicked instance still joins it.
	again := store.RotationRequest{InstanceID: "inst-clicked", RotationID: "rot-click-again", Queue: "interactive", Overtakes: "bulk"}
	if c, err := f.st.Claim(ctx, again); err != nil || c.Status != store.Joined || c.RotationID != "rot-wave-inst-clicked" {
		t.Errorf("second click: %+v, %v; want it to join the moved rotation", c, err)
	}
	waiting := store.RotationRequest{InstanceID: "inst-waiting", RotationID: "rot-wave-inst-waiting", BatchID: "bat-wave", Queue: "bulk"}
	if c, err := f.st.Claim(ctx, waiting); err != nil || c.Status != store.Done {
		t.Errorf("unmoved rotation's task after the cancel: %+v, %v; want it done (cancelled)", c, err)
	}
	for id, want := range map[string]string{"inst-clicked": store.RotationRequested, "inst-waiting": store.RotationCancelled} {
		if r, err := f.st.Rotation(ctx, "rot-wave-"+id); err != nil || r.State != want {
			t.Errorf("wave's rotation of %s is %q (%v), want %q", id, r.State, err, want)
		}
	}
}

// A customer's click or an operator's rotation that joins a wave's
// rotation its bulk task started (not moved: the task's run may still be
// minting) was answered "joined" all the same. Should that run fail before
// anything is minted (the issuer answered 5xx) and the wave be cancelled
// before its retry, the retry's claim must not cancel the rotation: the
// request that joined it would end with its instance not rotated, its
// batch done, and the click refused the rotation of its own it would have
// started a moment later. The retry resumes it; the request's batch waits
// for it.
func TestCancellingAWaveKeepsTheStartedRotationARequestJoined(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-started", "cred-0")
	for _, b := range []string{"bat-wave", "bat-click"} {
		if err := f.st.CreateBatch(ctx, b, b, 1); err != nil {
			t.Fatal(err)
		}
	}
	task := store.RotationRequest{InstanceID: "inst-started", RotationID: "rot-wave", BatchID: "bat-wave", Queue: "bulk"}
	if c := f.st.ClaimMany(ctx, []store.RotationRequest{task})[0]; c.Err != nil || c.Claim.Status != store.Claimed {
		t.Fatalf("wave's claim: %+v", c)
	}
	if c, err := f.st.Claim(ctx, task); err != nil || c.Status != store.Resumed {
		t.Fatalf("bulk task's claim: %+v, %v; want it resumed", c, err)
	}
	click := store.RotationRequest{InstanceID: "inst-started", RotationID: "rot-click", BatchID: "bat-click",
		Queue: "interactive", Overtakes: "bulk"}
	if got, err := f.st.ClaimBrief(ctx, click); err != nil || got.Status != store.Joined || got.Moved {
		t.Fatalf("click: %+v, %v; want joined, not moved", got, err)
	}
	if err := f.st.CountBatch(ctx, "bat-click", 0, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CancelBatch(ctx, "bat-wave"); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(2 * time.Second) // the bulk task's fast retry
	if c, err := f.st.Claim(ctx, task); err != nil || c.Status != store.Resumed {
		t.Errorf("bulk task's retry after the wave was cancelled: %+v, %v; want it resumed", c, err)
	}
	if r, err := f.st.Rotation(ctx, "rot-wave"); err != nil || r.State != store.RotationRequested {
		t.Errorf("joined rotation is %q (%v), want still requested", r.State, err)
	}
	if b, err := f.st.Batch(ctx, "bat-click"); err != nil || b.Done || b.InFlight != 1 {
		t.Errorf("click's batch %+v, %v; want it waiting for the rotation it joined", b, err)
	}
}

// A rotate task that another app enqueued on the bulk queue itself (the
// tasks package), rather than a producer's held claim, claims its rotation
// as it runs and goes on to mint at once: a request that joins it meanwhile
// must not move it, or a second task would run it beside the first,
// minting and pushing it again. A producer's claim (brief), which only
// holds the rotation for the feeder, still moves.
func TestARequestDoesNotMoveARotationATaskClaimedRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-task", "cred-0")
	f.register(t, "inst-held", "cred-0")
	task := store.RotationRequest{InstanceID: "inst-task", RotationID: "rot-task", Queue: "bulk"}
	if c, err := f.st.Claim(ctx, task); err != nil || c.Status != store.Claimed {
		t.Fatalf("bulk task's claim: %+v, %v", c, err)
	}
	held := f.st.ClaimMany(ctx, []store.RotationRequest{{InstanceID: "inst-held", RotationID: "rot-held", Queue: "bulk"}})
	if held[0].Err != nil || held[0].Claim.Status != store.Claimed {
		t.Fatalf("producer's claim: %+v", held[0])
	}
	for id, wantMoved := range map[string]bool{"inst-task": false, "inst-held": true} {
		click := store.RotationRequest{InstanceID: id, RotationID: "rot-click-" + id, Queue: "interactive", Overtakes: "bulk"}
		if got, err := f.st.Claim(ctx, click); err != nil || got.Status != store.Joined || got.Moved != wantMoved {
			t.Errorf("click on %s: %+v, %v; want joined, moved %v", id, got, err, wantMoved)
		}
	}
}

// A second wave that names an instance of the first joins the first's
// rotation (I4) and waits for it. Cancelling the first wave must not end
// that rotation before it starts: the second wave, not cancelled, would
// count its instance ended and never rotate it. A request meanwhile joins
// it as well rather than starting another. Once the second wave is
// cancelled too, nothing waits for the rotation and it is cancelled.
func TestCancellingAWaveKeepsTheRotationALiveWaveJoined(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-both", "cred-0")
	for _, b := range []string{"bat-first", "bat-second"} {
		if err := f.st.CreateBatch(ctx, b, b, 1); err != nil {
			t.Fatal(err)
		}
	}
	first := store.RotationRequest{InstanceID: "inst-both", RotationID: "rot-first", BatchID: "bat-first", Queue: "bulk"}
	second := store.RotationRequest{InstanceID: "inst-both", RotationID: "rot-second", BatchID: "bat-second", Queue: "bulk"}
	got := f.st.ClaimMany(ctx, []store.RotationRequest{first})
	got = append(got, f.st.ClaimMany(ctx, []store.RotationRequest{second})...)
	if got[0].Err != nil || got[0].Claim.Status != store.Claimed || got[1].Err != nil ||
		got[1].Claim.Status != store.Joined || got[1].Claim.RotationID != "rot-first" {
		t.Fatalf("waves' claims: %+v; want the first claimed, the second joined to it", got)
	}
	if err := f.st.CountBatch(ctx, "bat-second", 0, 1, 0); err != nil {
		t.Fatal(err)
	}
	// A rotate task another app enqueued itself, naming a batch rekey never
	// created (nobody could cancel it), joins another rotation of the first
	// wave: it keeps nothing.
	f.register(t, "inst-ghost", "cred-0")
	ghostFirst := store.RotationRequest{InstanceID: "inst-ghost", RotationID: "rot-ghost-first", BatchID: "bat-first", Queue: "bulk"}
	ghost := store.RotationRequest{InstanceID: "inst-ghost", RotationID: "rot-ghost", BatchID: "bat-nightly", Queue: "bulk"}
	for _, r := range []store.RotationRequest{ghostFirst, ghost} {
		if c := f.st.ClaimMany(ctx, []store.RotationRequest{r})[0]; c.Err != nil {
			t.Fatal(c.Err)
		}
	}
	if err := f.st.CancelBatch(ctx, "bat-first"); err != nil {
		t.Fatal(err)
	}
	if c, err := f.st.Claim(ctx, ghostFirst); err != nil || c.Status != store.Done || c.State != store.RotationCancelled {
		t.Errorf("first wave's task of the rotation a batch that does not exist joined: %+v, %v; want it cancelled", c, err)
	}
	loose := store.RotationRequest{InstanceID: "inst-both", RotationID: "rot-loose", Queue: "bulk"}
	if c := f.st.ClaimMany(ctx, []store.RotationRequest{loose})[0]; c.Err != nil || c.Claim.Status != store.Joined ||
		c.Claim.RotationID != "rot-first" {
		t.Errorf("a request after the first wave's cancel: %+v; want it to join the rotation the second wave waits for", c)
	}
	if c, err := f.st.Claim(ctx, first); err != nil || c.Status != store.Resumed {
		t.Errorf("first wave's task after its cancel: %+v, %v; want it resumed for the second wave", c, err)
	}
	if b, err := f.st.Batch(ctx, "bat-second"); err != nil || b.Done || b.InFlight != 1 {
		t.Errorf("second wave's batch %+v, %v; want it waiting for the rotation it joined", b, err)
	}

	f.register(t, "inst-left", "cred-0")
	for _, r := range []store.RotationRequest{
		{InstanceID: "inst-left", RotationID: "rot-left-first", BatchID: "bat-first", Queue: "bulk"},
		{InstanceID: "inst-left", RotationID: "rot-left-second", BatchID: "bat-second", Queue: "bulk"},
	} {
		if c := f.st.ClaimMany(ctx, []store.RotationRequest{r})[0]; c.Err != nil {
			t.Fatal(c.Err)
		}
	}
	if err := f.st.CancelBatch(ctx, "bat-second"); err != nil {
		t.Fatal(err)
	}
	left := store.RotationRequest{InstanceID: "inst-left", RotationID: "rot-left-first", BatchID: "bat-first", Queue: "bulk"}
	if c, err := f.st.Claim(ctx, left); err != nil || c.Status != store.Done || c.State != store.RotationCancelled {
		t.Errorf("first wave's task once both waves are cancelled: %+v, %v; want it cancelled", c, err)
	}
}

// Only a task's claim, which goes on to mint, notes that the rotation
// started. A producer asking again for a held rotation, the feeder looking
// at one of a cancelled wave, or a cancel reading the wave's rotations
// (all brief claims) run nothing: a customer's click after them still moves
// the rotation ahead of the wave.
func TestABriefClaimThatResumesDoesNotPinTheRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-held", "cred-0")
	held := store.RotationRequest{InstanceID: "inst-held", RotationID: "rot-held", Queue: "bulk"}
	for i, want := range []store.ClaimStatus{store.Claimed, store.Resumed} {
		if c, err := f.st.ClaimBrief(ctx, held); err != nil || c.Status != want {
			t.Fatalf("producer's claim %d: %+v, %v; want %s", i, c, err, want)
		}
	}
	click := store.RotationRequest{InstanceID: "inst-held", RotationID: "rot-click", Queue: "interactive", Overtakes: "bulk"}
	if got, err := f.st.Claim(ctx, click); err != nil || got.Status != store.Joined || !got.Moved {
		t.Errorf("click after a producer's second claim: %+v, %v; want joined and moved", got, err)
	}
}
