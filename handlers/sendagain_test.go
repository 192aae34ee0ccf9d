package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// useBudget points the rig's Heroku client at its fake through a limiter
// of the shared budget, and returns the limiter.
func (g *rig) useBudget(t *testing.T) *ratelimit.Limiter {
	t.Helper()
	lim, err := ratelimit.New(g.rdb, ratelimit.Params{PerHour: 36000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lim.Close() })
	srv := httptest.NewServer(g.fake)
	t.Cleanup(srv.Close)
	hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL), heroku.WithLimiter(lim),
		heroku.WithTokenStore(g.st), heroku.WithOAuthClientSecret(secret.New(herokufake.DefaultClientSecret)))
	if err != nil {
		t.Fatal(err)
	}
	g.deps.Heroku = hc
	return lim
}

// statuses lists the answers the fake gave to calls of e, in order.
func (g *rig) statuses(e herokufake.Endpoint) []int {
	var out []int
	for _, c := range g.fake.Calls(e) {
		out = append(out, c.Status)
	}
	return out
}

// A push answered 503 in the middle of a wave is sent again within the
// run, under the budget, rather than returned to asynq to wait out a retry
// delay while the budget idles. The unanswered push stays unsettled: it may
// still land, and the promotion settles only the push that was answered.
func TestAPushAnswered5xxIsSentAgainWithinTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	lim := g.useBudget(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(503))
	before := lim.Stats().Background.Granted
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err != nil {
		t.Fatalf("run with one push answered 503 = %v, want the rotation promoted in the same run", err)
	}
	if got := g.statuses(herokufake.PatchConfig); len(got) != 2 || got[0] != 503 || got[1] != 200 {
		t.Fatalf("pushes answered %v, want [503 200]", got)
	}
	if granted := lim.Stats().Background.Granted - before; granted != 2 {
		t.Errorf("the budget granted %d calls for the run, want one for each push", granted)
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	in, _ := g.st.Instance(ctx, "inst-1")
	if rot.State != store.RotationPromoted || in.CurrentCredential != rot.CredentialID {
		t.Errorf("rotation %s, current %s; want promoted with %s current", rot.State, in.CurrentCredential, rot.CredentialID)
	}
	if a, s, err := g.st.PushAttempts(ctx, "rot-1"); err != nil || a != 2 || s != 1 {
		t.Errorf("push attempts %d, settled %d (%v); want 2, the one answered 503 unsettled", a, s, err)
	}
	// The timeline shows the push answered 503, as it shows one
	// returned to asynq.
	events, err := g.st.Events(ctx, "inst-1", 50)
	if err != nil {
		t.Fatal(err)
	}
	var retried []string
	for _, e := range events {
		if e.Type == store.EventRetrying {
			retried = append(retried, e.Detail)
		}
	}
	if len(retried) != 1 || !strings.HasPrefix(retried[0], "push: ") || !strings.Contains(retried[0], "503") {
		t.Errorf("retrying events %q, want one naming the push answered 503", retried)
	}
}

// A push left unanswered twice in one run goes back to asynq: a run sends
// a push again only after the rotation's first unanswered one, and the
// next run reads Heroku's config back before it pushes a third time, once.
// A Heroku that keeps failing gets at most two pushes a run.
func TestAPushUnansweredTwiceGoesBackToTheQueue(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.useBudget(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(503), herokufake.Respond(503), herokufake.Respond(503))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil || isPermanent(err) {
		t.Fatalf("run 1 = %v, want a retryable error", err)
	}
	if got := g.statuses(herokufake.PatchConfig); len(got) != 2 {
		t.Fatalf("run 1 pushed %d times (%v), want 2", len(got), got)
	}
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil || isPermanent(err) {
		t.Fatalf("run 2 = %v, want a retryable error", err)
	}
	if got := g.statuses(herokufake.PatchConfig); len(got) != 3 {
		t.Errorf("runs 1 and 2 pushed %d times (%v), want 3: run 2 sends no push again", len(got), got)
	}
	if reads := len(g.fake.Calls(herokufake.GetConfig)); reads != 1 {
		t.Errorf("run 2 read the config %d times, want once before its push", reads)
	}
}

// A run whose time is nearly up leaves the push to asynq rather than send
// it again: cut off by the run's end, it would be one more unanswered push.
func TestAPushIsNotSentAgainAtTheEndOfARun(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(503))
	// 140 s: enough for a V1 push and its read-back under the longest
	// wait for the budget, not for a V3 push refused 401, its token's
	// refresh and the push sent with the new token, each push after the
	// longest wait.
	ctx, cancel := context.WithTimeout(context.Background(), 140*time.Second)
	defer cancel()
	if err := g.mux.ProcessTask(ctx, rotateTask(t, "inst-1", "rot-1")); err == nil || isPermanent(err) {
		t.Fatalf("run with 140s left = %v, want a retryable error", err)
	}
	if got := g.statuses(herokufake.PatchConfig); len(got) != 1 {
		t.Errorf("pushes answered %v, want the one answered 503 only", got)
	}
}

// A front that answers the push 503 with the app's live password as its
// Request-Id must not put it in the log line of the push sent again, the
// instance's events or the run's error (I5): not when the run read the
// app's config first (an instance registered without current_config),
// and so knows the password, nor when it never read it (registered with
// current_config), where no scrubber could find it.
func TestThePushSentAgainLogsNoSecretOfTheApps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		provision func(*testing.T, *rig, string)
	}{
		{"read by the run", provisionWithoutConfig},
		{"never read", func(t *testing.T, g *rig, id string) { g.provision(t, id, g.reg) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			const id = "inst-2"
			tc.provision(t, g, id)
			pushAgainQuotingTheLivePassword(t, g, id)
		})
	}
}

// pushAgainQuotingTheLivePassword runs a rotation of id whose first two
// pushes a front answers 503 with the app's live password as Request-Id,
// and checks that nothing the run kept quotes it.
func pushAgainQuotingTheLivePassword(t *testing.T, g *rig, id string) {
	t.Helper()
	u, err := url.Parse(g.fake.Config(id)[issuer.DefaultConfigVar])
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	if len(pw) < 16 {
		t.Fatalf("live password %q is too short to tell", pw)
	}
	var patches atomic.Int32
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && patches.Add(1) <= 2 {
			w.Header().Set("Request-Id", pw)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		g.fake.ServeHTTP(w, r)
	}), 5*time.Second)
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	runErr := g.mux.ProcessTask(ctx, rotateTask(t, id, "rot-1"))
	if runErr == nil || strings.Contains(runErr.Error(), pw) {
		t.Fatalf("run = %v, want the second 503 without the live password", runErr)
	}
	if !strings.Contains(logs.String(), "push_sent_again") {
		t.Fatalf("no push_sent_again in the log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the worker's log holds the app's live password (I5):\n%s", logs.String())
	}
	events, err := g.st.Events(context.Background(), id, 50)
	if err != nil {
		t.Fatal(err)
	}
	retrying := 0
	for _, e := range events {
		if e.Type == store.EventRetrying {
			retrying++
		}
		if strings.Contains(e.Detail, pw) {
			t.Errorf("the instance's %s event holds the app's live password (I5): %q", e.Type, e.Detail)
		}
	}
	if retrying == 0 {
		t.Error("no retrying event in the instance's timeline")
	}
}
