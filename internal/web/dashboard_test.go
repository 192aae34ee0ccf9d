package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

func TestDashboardShowsStateAndTimeline(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.clock.Advance(time.Hour)
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	ctx := context.Background()
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-2", Reason: "customer request"}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SavePending(ctx, "inst-1", "rot-2", "cred-2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, "inst-1", "rot-2", "mint:issuer_422", "mint: issuer 422: db at postgres://u9:pw9@db refused"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(3 * time.Hour)
	page := f.get("/dashboard", f.login("inst-1")).body
	for _, want := range []string{
		`<button type="submit" id="rotate" aria-describedby="rotate-help">Rotate credentials</button>`,
		`id="status" role="status" aria-live="polite"`,
		`<ol id="timeline"`,
		`<code>cred-1</code>, in use for 3 hours`,
		`<code>cred-0</code> will be revoked at`,
		`Revoke the old credential now`,
		`<label for="confirm-cred-0">`,
		`Next scheduled rotation</dt>`,
		"The credential service could not create a new credential. Your current credential keeps working.",
		"Rotation requested by an operator",
		"Rotation requested by you",
		"New credential minted (cred-1)",
		"Pushed to Heroku: apps release and restart",
		"Old credential will be revoked at 3 Mar 2010 09:30:32 UTC (cred-0)",
		"Rotation failed. The credential service could not create a new credential.",
		"Discarded the new credential, which was never published (cred-2)",
		"The old credential keeps working for 2 hours",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	for _, never := range []string{"pw9", "postgres://", "(test)"} {
		if strings.Contains(page, never) {
			t.Errorf("dashboard shows %q: the customer sees fixed sentences only", never)
		}
	}
	// The status, but not inside a random hex token (the CSRF field's).
	if regexp.MustCompile(`(^|[^0-9a-f])422([^0-9a-f]|$)`).MatchString(page) {
		t.Errorf("dashboard shows %q: the customer sees fixed sentences only", "422")
	}
	if strings.Contains(page, "src=") || strings.Contains(page, "<link") || strings.Contains(page, "url(") || strings.Contains(page, "@import") {
		t.Error("dashboard loads something from elsewhere, want inline assets only")
	}
}

func TestDashboardInlineAssetsMatchTheCSP(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	resp := f.get("/dashboard", f.login("inst-1"))
	csp := resp.header.Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`).FindStringSubmatch(resp.body)
		if m == nil {
			t.Fatalf("page has no inline %s", tag)
		}
		sum := sha256.Sum256([]byte(m[1]))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, tag+"-src "+want) {
			t.Errorf("got CSP %q, want %s-src %s", csp, tag, want)
		}
	}
}

func TestDashboardRotate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session)
	notice := noticeOf(resp)
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/dashboard" || notice == nil || notice.Value != "rotate" {
		t.Fatalf("got %d to %q, notice %v; want 303 to /dashboard with the rotate notice", resp.status, resp.header.Get("Location"), notice)
	}
	if q := f.queued(tasks.QueueInteractive); len(q) != 1 || q[0] != "inst-1" {
		t.Errorf("got %v on the interactive queue, want inst-1", q)
	}
	in, _ := f.st.Instance(context.Background(), "inst-1")
	rot, err := f.st.Rotation(context.Background(), in.InFlight)
	if err != nil || rot.Reason != "customer request" || rot.Queue != tasks.QueueInteractive {
		t.Errorf("got rotation %+v (%v), want a customer request on the interactive queue", rot, err)
	}
	// A HEAD changes nothing: the notice waits for the GET.
	h := http.Header{}
	addCookies(h, []*http.Cookie{session, notice})
	if head := f.do(http.MethodHead, "/dashboard", nil, h); head.status != http.StatusOK || noticeOf(head) != nil {
		t.Errorf("HEAD /dashboard: got %d, notice cookie %v; want 200 leaving the notice alone", head.status, noticeOf(head))
	}
	shown := f.get("/dashboard", session, notice)
	page := shown.body
	if c := noticeOf(shown); c == nil || c.MaxAge >= 0 {
		t.Errorf("the dashboard did not clear the notice it showed: %v", c)
	}
	for _, want := range []string{"Rotation requested. Progress shows below.", `data-busy="true"`, `http-equiv="refresh"`, "Rotation in progress"} {
		if !strings.Contains(page, want) {
			t.Errorf("page after the rotate button lacks %q", want)
		}
	}
	var status struct {
		Busy     bool
		Status   string
		Timeline []struct{ Text string }
	}
	f.get("/dashboard/status", session).json(t, &status)
	if !status.Busy || len(status.Timeline) == 0 || status.Timeline[len(status.Timeline)-1].Text != "Rotation requested by you" {
		t.Errorf("got status %+v, want busy with the request last in the timeline, oldest first", status)
	}
	resp = f.postForm("/dashboard/rotate", url.Values{"csrf_token": {f.csrf(session)}}, session)
	if c := noticeOf(resp); resp.header.Get("Location") != "/dashboard" || c == nil || c.Value != "joined-own" {
		t.Errorf("second press: got Location %q, notice %v; want the notice that the rotation is the customer's own", resp.header.Get("Location"), c)
	}
	// A link to the dashboard (from anywhere) shows no notice of its own.
	if page := f.get("/dashboard?done=revoke", session).body; strings.Contains(page, notices["revoke"]) ||
		strings.Contains(page, notices["rotate"]) {
		t.Error("a link's query made the dashboard show a notice")
	}
}

func TestDashboardRotateDeprovisioned(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	token := f.csrf(session)
	if err := f.st.Deprovision(context.Background(), "inst-1"); err != nil {
		t.Fatal(err)
	}
	if resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {token}}, session); resp.status != http.StatusConflict {
		t.Errorf("got status %d, want 409", resp.status)
	}
	if page := f.get("/dashboard", session).body; !strings.Contains(page, `id="rotate" aria-describedby="rotate-help" disabled`) {
		t.Error("got an enabled rotate button on a deprovisioned add-on")
	}
}

func TestDashboardRevokeNow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		scheduled  bool // the revoke task was scheduled at promotion, as workers do
		form       url.Values
		want       int
		wantIn     string // a sentence the answer must hold
		wantRevoke bool
	}{
		{name: "scheduled task runs now", scheduled: true, form: url.Values{"credential_id": {"cred-0"}, "confirm": {"yes"}}, want: http.StatusSeeOther, wantRevoke: true},
		{name: "lost task is enqueued", form: url.Values{"credential_id": {"cred-0"}, "confirm": {"yes"}}, want: http.StatusSeeOther, wantRevoke: true},
		{name: "not confirmed", scheduled: true, form: url.Values{"credential_id": {"cred-0"}}, want: http.StatusBadRequest},
		{name: "the current credential", scheduled: true, form: url.Values{"credential_id": {"cred-1"}, "confirm": {"yes"}}, want: http.StatusConflict,
			wantIn: "That is your current credential"},
		{name: "another instance's credential", scheduled: true, form: url.Values{"credential_id": {"cred-x"}, "confirm": {"yes"}}, want: http.StatusConflict,
			wantIn: "it may have been revoked already"},
		{name: "bad credential id", scheduled: true, form: url.Values{"credential_id": {"../x"}, "confirm": {"yes"}}, want: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.register("inst-1", "cred-0")
			f.register("inst-2", "cred-x")
			f.rotate("inst-2", "rot-x", "cred-y", 2*time.Hour)
			f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
			revokeAt := f.clock.Now().Add(2 * time.Hour)
			if tt.scheduled {
				f.scheduleRevoke("inst-1", "cred-0", time.Now().Add(2*time.Hour))
			}
			session := f.login("inst-1")
			tt.form.Set("csrf_token", f.csrf(session))
			if resp := f.postForm("/dashboard/revoke-now", tt.form, session); resp.status != tt.want || !strings.Contains(resp.body, tt.wantIn) {
				t.Fatalf("got status %d, want %d saying %q: %s", resp.status, tt.want, tt.wantIn, resp.body)
			}
			cred, _ := f.st.Credential(context.Background(), "inst-1", "cred-0")
			wantAt := revokeAt
			if tt.wantRevoke {
				wantAt = f.clock.Now()
			}
			if !cred.RevokeAt.Equal(wantAt) {
				t.Errorf("got revoke_at %v, want %v", cred.RevokeAt, wantAt)
			}
			info, err := f.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID("inst-1", "cred-0"))
			if tt.wantRevoke && (err != nil || info.State != asynq.TaskStatePending) {
				t.Errorf("got revoke task %v (%v), want it pending", info, err)
			}
			if other, _ := f.st.Credential(context.Background(), "inst-2", "cred-x"); other.State != store.CredentialPrevious || !other.RevokeAt.Equal(revokeAt) {
				t.Errorf("another instance's credential changed: %+v", other)
			}
		})
	}
}

// scheduleRevoke enqueues the revoke task a worker schedules at promotion,
// at a time asynq's own clock sees as future.
func (f *fixture) scheduleRevoke(instanceID, credID string, at time.Time) {
	f.t.Helper()
	task, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: instanceID, CredentialID: credID}, at)
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := asynq.NewClientFromRedisClient(f.r.Client).Enqueue(task)
	if err != nil || info.State != asynq.TaskStateScheduled {
		f.t.Fatalf("schedule revoke: got %v (%v), want a scheduled task", info, err)
	}
}

func TestDashboardWithoutSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp := f.get("/dashboard")
	if resp.status != http.StatusUnauthorized || !strings.Contains(resp.body, "Heroku Dashboard") {
		t.Errorf("got %d, want 401 telling the customer to open the dashboard from Heroku", resp.status)
	}
}

// notices are the dashboard's notices as the customer reads them.
var notices = map[string]string{
	"rotate": "Rotation requested. Progress shows below.",
	"revoke": "The old credential is being revoked now.",
}

// noticeOf returns the notice cookie an answer sets, or nil.
func noticeOf(r reply) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "rekey_notice" {
			return c
		}
	}
	return nil
}
