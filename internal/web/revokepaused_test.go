package web_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/tasks"
)

// "Revoke the old credential now" with the revoke queue paused by hand
// (asynq's CLI or Inspector; nothing of rekey's pauses it) says the
// revocation is queued but waits for the operator, naming no queue, and
// the web process logs a warning naming the paused queue once per
// expedite: a click again shows the same notice and logs nothing more.
func TestRevokeNowWithRevokeQueuePaused(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	f := newFixture(t, func(p *web.Params) { p.Logger = zerolog.New(&logs) })
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	f.scheduleRevoke("inst-1", "cred-0", time.Now().Add(2*time.Hour))
	if err := f.insp.PauseQueue(tasks.QueueRevoke); err != nil {
		t.Fatal(err)
	}
	session := f.login("inst-1")
	form := url.Values{"csrf_token": {f.csrf(session)}, "credential_id": {"cred-0"}, "confirm": {"yes"}}
	for click := range 2 {
		resp := f.postForm("/dashboard/revoke-now", form, session)
		c := noticeOf(resp)
		if c == nil {
			t.Fatalf("click %d: status %d, no notice; want one", click, resp.status)
		}
		page := f.get("/dashboard", session, c).body
		if strings.Contains(page, notices["revoke"]) || !strings.Contains(page, "waits for the service&#39;s operator") {
			t.Errorf("click %d: dashboard does not say the revocation waits for the operator: %s", click, page)
		}
		if strings.Contains(page, tasks.QueueRevoke+" queue") || strings.Contains(page, "asynq") {
			t.Errorf("click %d: dashboard names operator internals: %s", click, page)
		}
	}
	if n := strings.Count(logs.String(), "revoke queue is paused"); n != 1 || !strings.Contains(logs.String(), `"queue":"`+tasks.QueueRevoke+`"`) {
		t.Errorf("got %d warnings of the paused queue, want 1 naming it: %s", n, logs.String())
	}

	// Resumed, the notice is the usual one again.
	if err := f.insp.UnpauseQueue(tasks.QueueRevoke); err != nil {
		t.Fatal(err)
	}
	c := noticeOf(f.postForm("/dashboard/revoke-now", form, session))
	if page := f.get("/dashboard", session, c).body; !strings.Contains(page, notices["revoke"]) {
		t.Errorf("queue resumed: dashboard does not say %q: %s", notices["revoke"], page)
	}
}
