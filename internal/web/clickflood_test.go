package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/tasks"
)

// A customer clicking "rotate" over and over while the rotation runs (past
// its mint) is answered from the instance's state: no batch, no claim, no
// event, nothing written at all. Each click used to join the rotation with a batch of its
// own kept 30 days and a "joined" event in the fleet stream, and once the
// rotation's list of joined batches was full, an operator's batch for the
// same instance during an incident answered done at once while the
// rotation still ran.
func TestClicksWhileARotationRunsWriteNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	token := f.csrf(session)
	clickRotate(t, f, session, token, "rotate", "first click")
	in, err := f.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SavePending(ctx, "inst-1", in.InFlight, "cred-1",
		map[string]secret.String{"MYADDON_URL": secret.New("postgres://new")}); err != nil {
		t.Fatal(err)
	}
	before := redistest.Dump(t, f.r)
	for i := range 40 {
		if resp := clickRotate(t, f, session, token, "joined-own", fmt.Sprintf("click %d while the rotation runs", i+2)); resp.status != http.StatusSeeOther {
			t.Fatalf("click %d while the rotation runs: %d, want 303", i+2, resp.status)
		}
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Errorf("40 clicks while the rotation ran changed Redis")
	}
	if page := f.get("/dashboard", session).body; !strings.Contains(page, "Rotation in progress") {
		t.Error("the dashboard does not say the rotation is under way")
	}

	var op, b batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"incident"}`).json(t, &op)
	f.api(http.MethodGet, "/api/v1/batches/"+op.BatchID, "").json(t, &b)
	if op.Joined != 1 || b.Done || b.InFlight != 1 {
		t.Errorf("operator's batch after the clicks: %+v then %+v; want it joined, 1 in flight, not done", op, b)
	}
	batches, err := f.st.Batches(ctx, store.BatchQuery{Limit: 100})
	if err != nil || len(batches) != 2 {
		t.Errorf("%d batches (%v), want 2: the first click's and the operator's", len(batches), err)
	}
}

// clickRotate posts the dashboard's rotate button and fails the test
// unless its answer carries the notice want.
func clickRotate(t *testing.T, f *fixture, session *http.Cookie, token, want, what string) reply {
	t.Helper()
	resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {token}}, session)
	if c := noticeOf(resp); c == nil || c.Value != want {
		t.Fatalf("%s: %d, notice %v; want %s", what, resp.status, c, want)
	}
	return resp
}

// countEvents counts the events of type typ.
func countEvents(events []store.Event, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// batchRotation claims inst-1's rotation rot for batch, on queue, as a
// producer does before its task exists.
func batchRotation(t *testing.T, f *fixture, batch, rot, queue string) {
	t.Helper()
	ctx := context.Background()
	if err := f.st.CreateBatch(ctx, batch, "operator", 1); err != nil {
		t.Fatal(err)
	}
	req := store.RotationRequest{InstanceID: "inst-1", RotationID: rot, BatchID: batch, Queue: queue}
	if _, err := f.st.ClaimBrief(ctx, req); err != nil {
		t.Fatal(err)
	}
}

// A click on an instance whose rotation waits in a paced wave still moves
// it ahead of the wave (docs/design.md, "Pacing a wave"), once. The click
// that moved the wave's rotation leaves no batch of its own, nor a
// "joined" event in the fleet stream; nor do the clicks after it, which
// join it at its claim.
func TestAClickMovesAWavesRotationOnceAndLeavesNoBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	batchRotation(t, f, "bat-wave", "rot-wave", tasks.QueueBulk)
	session := f.login("inst-1")
	token := f.csrf(session)
	clickRotate(t, f, session, token, "joined", "click on a wave's rotation")
	if r, err := f.st.Rotation(ctx, "rot-wave"); err != nil || r.Queue != tasks.QueueInteractive {
		t.Errorf("wave's rotation after the click: %+v, %v; want it moved to the interactive queue", r, err)
	}
	if q := f.queued(tasks.QueueInteractive); len(q) != 1 {
		t.Errorf("interactive queue holds %v, want the moved rotation's task", q)
	}
	batches, err := f.st.Batches(ctx, store.BatchQuery{Limit: 100})
	if err != nil || len(batches) != 1 || batches[0].ID != "bat-wave" {
		t.Errorf("batches after the click: %+v, %v; want only the wave's", batches, err)
	}
	events, err := f.st.FleetEvents(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := countEvents(events, store.EventJoined); n != 0 {
		t.Errorf("%d customer's joins in the fleet stream, want none", n)
	}
	for range 5 {
		clickRotate(t, f, session, token, "joined", "click after the move")
	}
	if q := f.queued(tasks.QueueInteractive); len(q) != 1 {
		t.Errorf("interactive queue holds %v after more clicks, want the one task", q)
	}
	if batches, err := f.st.Batches(ctx, store.BatchQuery{Limit: 100}); err != nil || len(batches) != 1 {
		t.Errorf("batches after more clicks: %+v, %v; want only the wave's", batches, err)
	}
}

// Clicks on a rotation still requested (its mint not done: a slow issuer,
// a queue backlog) go to the claim, which joins it: the instance's history
// notes the customer's join once, however many clicks, so that clicks
// cannot push operators' events out of its capped history; and the daily
// limit, which counts the rotations a customer starts, refuses none of
// them.
func TestClicksOnARequestedRotationJoinOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(p *web.Params) { p.CustomerLimits = store.CustomerLimits{PerDay: 1} })
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	token := f.csrf(session)
	clickRotate(t, f, session, token, "rotate", "first click")
	for i := range 30 {
		if resp := clickRotate(t, f, session, token, "joined-own", fmt.Sprintf("click %d on the requested rotation", i+2)); resp.status != http.StatusSeeOther {
			t.Fatalf("click %d on the requested rotation: %d %s, want 303", i+2, resp.status, resp.body)
		}
	}
	hist, err := f.st.Events(ctx, "inst-1", 100)
	if err != nil {
		t.Fatal(err)
	}
	if joined := countEvents(hist, store.EventJoined); joined != 1 {
		t.Errorf("%d joined events in the instance's history after 30 clicks, want 1", joined)
	}
	if batches, err := f.st.Batches(ctx, store.BatchQuery{Limit: 100}); err != nil || len(batches) != 1 {
		t.Errorf("%d batches (%v), want the first click's only", len(batches), err)
	}
}

// A rotation of a cancelled batch that has not started is no rotation a
// click can wait for: the claim ends it and starts the customer's own. The
// click must reach the claim, not be told from the instance's state that
// a rotation is under way.
func TestAClickOnACancelledBatchsRotationStartsItsOwn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	batchRotation(t, f, "bat-op", "rot-op", tasks.QueueDefault)
	if err := f.st.CancelBatch(ctx, "bat-op"); err != nil {
		t.Fatal(err)
	}
	session := f.login("inst-1")
	clickRotate(t, f, session, f.csrf(session), "rotate", "click on a cancelled batch's rotation")
	in, err := f.st.Instance(ctx, "inst-1")
	if err != nil || in.InFlight == "" || in.InFlight == "rot-op" {
		t.Errorf("in flight after the click: %q (%v); want the customer's own rotation", in.InFlight, err)
	}
	if q := f.queued(tasks.QueueInteractive); len(q) != 1 {
		t.Errorf("interactive queue holds %v, want the customer's rotation's task", q)
	}
}

// "Revoke the old credential now" clicked again while the revocation runs
// (or waits on a hold) writes nothing: the expedite is in the instance's
// history and the fleet stream once, however many clicks.
func TestRevokeNowAgainWritesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	session := f.login("inst-1")
	token := f.csrf(session)
	form := url.Values{"csrf_token": {token}, "credential_id": {"cred-0"}, "confirm": {"yes"}}
	if c := noticeOf(f.postForm("/dashboard/revoke-now", form, session)); c == nil || c.Value != "revoke" {
		t.Fatalf("revoke now: notice %v, want revoke", c)
	}
	before := redistest.Dump(t, f.r)
	for range 5 {
		if c := noticeOf(f.postForm("/dashboard/revoke-now", form, session)); c == nil || c.Value != "revoke" {
			t.Fatalf("revoke now again: notice %v, want revoke", c)
		}
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Errorf("revoke now clicked again changed Redis")
	}
	events, err := f.st.FleetEvents(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fleet := countEvents(events, store.EventRevokeExpedited); fleet != 1 {
		t.Errorf("%d expedite events in the fleet stream, want the customer's one", fleet)
	}
	hist, err := f.st.Events(ctx, "inst-1", 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := countEvents(hist, store.EventRevokeExpedited); n != 1 {
		t.Errorf("the instance's history holds %d expedites, want the one", n)
	}
}
