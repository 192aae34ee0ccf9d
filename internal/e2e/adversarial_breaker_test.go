package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/tasks"
)

// Two `rekey worker` processes of breakerConcurrency each run every wave of
// these tests, so that the breaker is shown to work across processes.
const (
	breakerWorkers     = 2
	breakerConcurrency = 3
	// defaultThreshold is REKEY_BREAKER_THRESHOLD's default.
	defaultThreshold = 10
)

// breakerFleet is a world with n instances, breakerWorkers worker
// processes under env's REKEY_BREAKER_* settings, and the ids of the
// instances.
type breakerFleet struct {
	*world
	env     map[string]string
	samples []sandbox.Sample
	ids     []string
	workers []*process
}

func newBreakerFleet(t *testing.T, n int, breakerEnv map[string]string, setup func(*world)) *breakerFleet {
	t.Helper()
	w := newWorld(t, worldParams{})
	f := &breakerFleet{world: w, samples: w.provision(n, sandbox.DefaultMix)}
	for _, s := range f.samples {
		f.ids = append(f.ids, s.ID)
	}
	f.env = w.sb.Env(w.redis.URL)
	f.env["REKEY_HEROKU_RATE"] = "1000000"
	f.env["REKEY_LOG_LEVEL"] = "warn"
	f.env["REKEY_CONCURRENCY"] = fmt.Sprint(breakerConcurrency)
	for k, v := range breakerEnv {
		f.env[k] = v
	}
	if setup != nil {
		setup(w)
	}
	for range breakerWorkers {
		f.workers = append(f.workers, startRekey(t, f.env, "worker"))
	}
	return f
}

// wave requests a fleet wave of ids on the bulk queue, as
// `rekey rotate --all` does.
func (f *breakerFleet) wave(ids []string) string {
	f.t.Helper()
	res, err := fleet.NewProducer(f.store, f.queue).Rotate(context.Background(),
		fleet.Request{InstanceIDs: ids, Reason: "e2e wave", Queue: tasks.QueueBulk})
	if err != nil || res.Enqueued != len(ids) {
		f.t.Fatalf("wave: %+v, %v", res, err)
	}
	return res.BatchID
}

// rekeyCmd runs a short rekey command and returns its exit code and output.
func (f *breakerFleet) rekeyCmd(args ...string) (int, string) {
	f.t.Helper()
	p := startRekey(f.t, f.env, args...)
	code := p.exit(time.Minute)
	return code, p.stderr.String()
}

// waitHeld waits for the breaker to open and the bulk queue to settle,
// paused: tasks the workers had taken finish (fail) as usual; the rest wait.
func (f *breakerFleet) waitHeld(t *testing.T) {
	t.Helper()
	waitFor(t, time.Minute, "breaker to open", func() (bool, string) {
		return f.breakerState().Open(), fmt.Sprintf("%+v", f.breakerState())
	})
	waitFor(t, time.Minute, "bulk queue to settle, paused", func() (bool, string) {
		info, err := f.insp.GetQueueInfo(tasks.QueueBulk)
		if err != nil {
			return false, err.Error()
		}
		return info.Paused && info.Active == 0, fmt.Sprintf("%+v", info)
	})
}

func (f *breakerFleet) breakerState() store.BreakerState {
	f.t.Helper()
	b, err := f.store.BreakerState(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// TestBreakerHoldsAWaveOnAnAccountWide403 plays a partner account
// suspended in the middle of the night: Heroku answers 403 to every config
// change. A fleet wave of 60 instances must not fail 60 times: the
// breaker opens after about REKEY_BREAKER_THRESHOLD failures, the rest of
// the wave waits in the paused bulk queue (not failed), the scheduler
// enqueues nothing, and operators are told why. Default-queue work keeps
// running. Once Heroku recovers and an operator resumes, the rest of the
// wave completes.
func TestBreakerHoldsAWaveOnAnAccountWide403(t *testing.T) {
	t.Parallel()
	const n = 60
	ctx := context.Background()
	f := newBreakerFleet(t, n+1, nil, func(w *world) {
		w.sb.Fake.Always(herokufake.PatchConfig, herokufake.Respond(403))
		w.sb.Fake.Always(herokufake.V1Put, herokufake.Respond(403))
	})
	wave, spare := f.ids[:n], f.ids[n]
	batch := f.wave(wave)

	f.waitHeld(t)
	held, _ := f.store.Batch(ctx, batch)
	info, _ := f.insp.GetQueueInfo(tasks.QueueBulk)
	denied := herokuCalls(f.sb.Fake, herokufake.PatchConfig, herokufake.V1Put)
	t.Logf("breaker opened after %d pushes denied: batch %d failed, %d succeeded, %d in flight; bulk queue %d pending, paused %v",
		denied, held.Failed, held.Succeeded, held.InFlight, info.Pending, info.Paused)
	maxFailed := int64(defaultThreshold + 2*breakerWorkers*breakerConcurrency)
	switch {
	case held.Failed < defaultThreshold || held.Failed > maxFailed:
		t.Fatalf("%d rotations failed before the breaker held the wave, want %d to %d", held.Failed, defaultThreshold, maxFailed)
	case held.Succeeded != 0 || held.InFlight != n-held.Failed || int64(info.Pending) != held.InFlight:
		t.Fatalf("batch %+v with %d tasks pending: want every rotation not failed waiting in the bulk queue", held, info.Pending)
	case int64(denied) != held.Failed:
		t.Fatalf("Heroku saw %d pushes for %d failed rotations: a waiting rotation pushed", denied, held.Failed)
	}

	f.checkOperatorsAreTold(t, held.Failed)
	f.checkSchedulerHeld(t)

	// Heroku recovers. Default-queue work runs while the wave still waits.
	f.sb.Fake.Clear(herokufake.PatchConfig)
	f.sb.Fake.Clear(herokufake.V1Put)
	if b := f.waitBatch(f.rotate(spare).BatchID, time.Minute); b.Succeeded != 1 {
		t.Fatalf("default-queue rotation while the breaker is open: %+v", b)
	}
	if info, _ := f.insp.GetQueueInfo(tasks.QueueBulk); int64(info.Pending) != held.InFlight || !info.Paused {
		t.Fatalf("bulk queue moved before the resume: %+v", info)
	}

	// A careless resume, off a terminal and without --confirm, is refused.
	if code, out := f.rekeyCmd("breaker", "resume"); code == 0 || !f.breakerState().Open() {
		t.Fatalf("resume without --confirm: exit %d, breaker open %v\n%s", code, f.breakerState().Open(), out)
	}
	if code, out := f.rekeyCmd("breaker", "resume", "--confirm", "--by", "e2e"); code != 0 || !strings.Contains(out, "breaker resumed") {
		t.Fatalf("rekey breaker resume --confirm: exit %d\n%s", code, out)
	}
	done := f.waitBatch(batch, 2*time.Minute)
	if done.Failed != held.Failed || done.Succeeded != n-held.Failed {
		t.Fatalf("after resume: %d succeeded, %d failed; want the %d held rotations to succeed", done.Succeeded, done.Failed, n-held.Failed)
	}
	changes := 0
	for _, id := range wave {
		changes += f.sb.Fake.ConfigChanges(id)
	}
	if int64(changes) != done.Succeeded {
		t.Fatalf("%d config changes on Heroku for %d rotations", changes, done.Succeeded)
	}
	if b := f.breakerState(); b.Open() || b.Openings != 1 || b.ResumedBy != "e2e" {
		t.Fatalf("breaker after the wave: %+v", b)
	}
}

// checkOperatorsAreTold checks every place the opening shows: one log
// line of one worker, `rekey breaker status --json`, `rekey scheduler
// status`, /metrics, and /monitoring's bulk queue, paused.
func (f *breakerFleet) checkOperatorsAreTold(t *testing.T, failed int64) {
	t.Helper()
	reason := "distinct instances answered 403 forbidden within "
	var logs strings.Builder
	for _, w := range f.workers {
		logs.WriteString(w.stderr.String())
	}
	if n := strings.Count(logs.String(), `"breaker_opened"`); n != 1 || !strings.Contains(logs.String(), reason) {
		t.Errorf("workers logged %d breaker_opened lines, want one with the reason:\n%s", n, logs.String())
	}
	code, out := f.rekeyCmd("breaker", "status", "--json")
	if code != 0 || !strings.Contains(out, `"open": true`) || !strings.Contains(out, `"bulk_paused": true`) ||
		!strings.Contains(out, reason) {
		t.Fatalf("rekey breaker status --json: exit %d\n%s", code, out)
	}
	code, out = f.rekeyCmd("scheduler", "status")
	t.Logf("rekey scheduler status:\n%s", out)
	if code != 0 || !strings.Contains(out, "breaker:            OPEN since ") || !strings.Contains(out, reason) ||
		!strings.Contains(out, "resume with `rekey breaker resume`") {
		t.Fatalf("rekey scheduler status: exit %d, want the breaker OPEN with its reason\n%s", code, out)
	}
	metricsText := f.webGet(t, "/metrics")
	for _, want := range []string{"rekey_breaker_open 1", "rekey_breaker_openings_total 1"} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var queues struct {
		Queues []struct {
			Queue  string `json:"queue"`
			Paused bool   `json:"paused"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(f.webGet(t, "/monitoring/api/queues")), &queues); err != nil {
		t.Fatal(err)
	}
	paused := map[string]bool{}
	for _, q := range queues.Queues {
		paused[q.Queue] = q.Paused
	}
	if !paused[tasks.QueueBulk] || paused[tasks.QueueDefault] || paused[tasks.QueueRevoke] {
		t.Errorf("/monitoring shows queues paused %v, want bulk only", paused)
	}
	if b := f.breakerState(); b.Denied < defaultThreshold || int64(b.Denied) > failed || b.Forbidden != b.Denied {
		t.Errorf("breaker opened on %+v, want at least %d instances denied with 403, no more than failed (%d)", b, defaultThreshold, failed)
	}
}

// webGet serves rekey's web handler, built as `rekey web` builds it, and
// GETs path as an operator.
func (f *breakerFleet) webGet(t *testing.T, path string) string {
	t.Helper()
	password, token := secret.New("operators-password"), secret.New("api-token-0123456789")
	h, err := web.New(web.Params{Store: f.store, Producer: fleet.NewProducer(f.store, f.queue),
		Registry: f.reg, Inspector: f.insp, Enqueuer: f.queue,
		Metrics:  metrics.NewCollector(f.store, f.insp, zerolog.Nop()).Handler(),
		APIToken: token, DashboardPassword: password, SSOSalt: secret.New("sso-salt"), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.SetBasicAuth("ops", password.Reveal())
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return string(body)
}

// checkSchedulerHeld sweeps with instances due: nothing may be enqueued.
func (f *breakerFleet) checkSchedulerHeld(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s, err := scheduler.New(scheduler.Params{Store: f.store, Enqueuer: f.queue, Logger: zerolog.Nop(),
		Period: time.Hour, PerHour: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(3 * time.Hour)
	if due, _ := f.store.CountDue(ctx, later); due == 0 {
		t.Fatal("no instance is due: the sweep would prove nothing")
	}
	before, _ := f.insp.GetQueueInfo(tasks.QueueBulk)
	res, err := s.Sweep(ctx, later)
	after, _ := f.insp.GetQueueInfo(tasks.QueueBulk)
	if err != nil || res.Outcome != scheduler.BreakerOpen || res.Enqueued != 0 || after.Size != before.Size {
		t.Fatalf("sweep with the breaker open = %+v, %v; bulk queue %d tasks before, %d after", res, err, before.Size, after.Size)
	}
}

// TestBreakerHoldsAWaveOnAHerokuURLThatIsNotHeroku plays an operator's
// typo: HEROKU_API_URL names a host that answers every call 200 with a page
// of its own (a parked domain, a proxy's welcome page). No such 2xx is
// taken for a push that landed: each rotation reads the config back, gets
// the page again, and fails (push:unexpected_answer) with its credential
// kept unconfirmed, never revoked on its own; no instance's current
// credential changes or is revoked; and after about
// REKEY_BREAKER_THRESHOLD of them the breaker pauses the rest of the wave.
// V1 instances too, whose answer has no documented body: a page is no
// answer of Heroku's.
func TestBreakerHoldsAWaveOnAHerokuURLThatIsNotHeroku(t *testing.T) {
	t.Parallel()
	const n = 40
	ctx := context.Background()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html><body>This domain is parked.</body></html>")
	}))
	t.Cleanup(page.Close)
	f := newBreakerFleet(t, n, map[string]string{"HEROKU_API_URL": page.URL}, nil)
	batch := f.wave(f.ids)
	f.waitHeld(t)
	held, _ := f.store.Batch(ctx, batch)
	maxFailed := int64(defaultThreshold + 2*breakerWorkers*breakerConcurrency)
	if held.Failed < defaultThreshold || held.Failed > maxFailed || held.Succeeded != 0 ||
		held.Failures["push:unexpected_answer"] != held.Failed {
		t.Fatalf("batch %+v; want %d to %d rotations failed with push:unexpected_answer, none succeeded, the rest held",
			held, defaultThreshold, maxFailed)
	}
	if st := f.breakerState(); st.Unexpected != st.Denied || st.Denied < defaultThreshold {
		t.Errorf("breaker opened on %+v; want only unexpected answers, at least %d", st, defaultThreshold)
	}
	code, out := f.rekeyCmd("breaker", "status")
	if code != 0 || !strings.Contains(out, "in ways Heroku never does (2xx without a config, redirects, 4xx without Heroku's error id: is HEROKU_API_URL or HEROKU_ID_URL Heroku's?)") {
		t.Errorf("rekey breaker status: exit %d, want the reason naming HEROKU_API_URL\n%s", code, out)
	}
	unconfirmed := 0
	for _, s := range f.samples {
		in, err := f.store.Instance(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if in.CurrentCredential != s.Provisioned || !f.sb.Demo.Valid(s.Provisioned) {
			t.Errorf("%s: current %s (provisioned %s, valid %v); want the provisioned credential, unrevoked",
				s.ID, in.CurrentCredential, s.Provisioned, f.sb.Demo.Valid(s.Provisioned))
		}
		if n := f.sb.Fake.ConfigChanges(s.ID); n != 0 {
			t.Errorf("%s: %d config changes on Heroku", s.ID, n)
		}
		events, err := f.store.Events(ctx, s.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Type != store.EventPushUnknown {
				continue
			}
			unconfirmed++
			c, err := f.store.Credential(ctx, s.ID, e.CredentialID)
			if err != nil || c.State != store.CredentialUnconfirmed || !f.sb.Demo.Valid(c.ID) {
				t.Errorf("%s: credential %s %s (valid %v, %v); want it kept unconfirmed and unrevoked",
					s.ID, e.CredentialID, c.State, f.sb.Demo.Valid(c.ID), err)
			}
		}
	}
	if int64(unconfirmed) != held.Failed {
		t.Errorf("%d credentials kept unconfirmed for %d failed rotations", unconfirmed, held.Failed)
	}
	if v := f.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}

// TestBreakerIgnoresScattered403s plays three customers whose add-ons are
// gone, scattered through a wave of 60: each of their rotations fails on
// its own, and the breaker stays closed, even with its threshold lowered
// to 3, because three instances are a small fraction of those Heroku
// answered.
func TestBreakerIgnoresScattered403s(t *testing.T) {
	t.Parallel()
	const n = 60
	ctx := context.Background()
	f := newBreakerFleet(t, n, map[string]string{"REKEY_BREAKER_THRESHOLD": "3"}, func(w *world) {
		var faults []herokufake.Fault
		for i := range 50 {
			status := 200 // let the call through
			if i == 9 || i == 29 || i == 49 {
				status = 403
			}
			faults = append(faults, herokufake.Respond(status))
		}
		w.sb.Fake.Script(herokufake.PatchConfig, faults...)
	})
	b := f.waitBatch(f.wave(f.ids), 2*time.Minute)
	if b.Failed != 3 || b.Succeeded != n-3 {
		t.Fatalf("batch: %d succeeded, %d failed (%v); want the 3 denied to fail alone", b.Succeeded, b.Failed, b.Failures)
	}
	info, err := f.insp.GetQueueInfo(tasks.QueueBulk)
	if err != nil {
		t.Fatal(err)
	}
	if st := f.breakerState(); st.Open() || st.Openings != 0 || info.Paused {
		t.Fatalf("breaker %+v, bulk paused %v; want it never opened", st, info.Paused)
	}
	if denied, answered, _ := f.store.BreakerWindow(ctx, 5*time.Minute); denied != 3 || answered != n {
		t.Fatalf("breaker window: %d denied of %d answered, want 3 of %d", denied, answered, n)
	}
}

// TestBreakerOpensOnARotatedClientSecret plays the partner's OAuth client
// secret rotated on Heroku's side but not in rekey's configuration: once
// access tokens expire, every V3 push gets 401, and so does the refresh
// the client tries. The V1 instances of the wave still succeed; the
// breaker opens all the same, on 401s, and holds the rest of the wave.
func TestBreakerOpensOnARotatedClientSecret(t *testing.T) {
	t.Parallel()
	const n = 40
	_, b, st := refusedRefreshWave(t, n, 401)
	if st.Unauthorized < defaultThreshold || st.Forbidden != 0 || !strings.Contains(breaker.Reason(st), "answered 401 unauthorized within") {
		t.Fatalf("breaker opened on %+v, want at least %d instances denied with 401", st, defaultThreshold)
	}
	if b.InFlight < n/3 || b.Failed > int64(defaultThreshold+2*breakerWorkers*breakerConcurrency) {
		t.Fatalf("batch %+v: want most of the wave held, not failed", b)
	}
}

// TestBreakerOpensOnAFleetWideRefusedTokenRefresh plays the token endpoint
// answering 400 to every refresh (a client secret Heroku reports as
// invalid_client with 400, or a proxy in front of the endpoint): the same
// account-level fault as TestBreakerOpensOnARotatedClientSecret's 401.
// A 400 that names no add-on's grant (not invalid_grant) says nothing of
// any one instance: the breaker counts it with the 401s and holds the
// wave, the runs that got it wait to be retried, and no instance is set
// aside as if its customer had revoked the authorization.
func TestBreakerOpensOnAFleetWideRefusedTokenRefresh(t *testing.T) {
	t.Parallel()
	const n = 40
	f, b, st := refusedRefreshWave(t, n, 400)
	if st.Unauthorized < defaultThreshold || st.Forbidden != 0 {
		t.Fatalf("breaker opened on %+v, want at least %d instances denied by refused refreshes", st, defaultThreshold)
	}
	if b.InFlight < n/3 || b.Failed != 0 {
		t.Fatalf("batch %+v: want most of the wave held and none failed", b)
	}
	for _, id := range f.ids {
		if in, err := f.store.Instance(context.Background(), id); err != nil || in.Quarantined() {
			t.Errorf("instance %s: quarantined %v (%q), %v; want none set aside", id, in.Quarantined(), in.QuarantineReason, err)
		}
	}
}

// refusedRefreshWave rotates a wave of n instances whose access tokens
// have expired while the token endpoint answers every refresh with status,
// and returns once the breaker holds the wave: the fleet, the wave's batch
// and the breaker's state.
func refusedRefreshWave(t *testing.T, n, status int) (*breakerFleet, store.Batch, store.BreakerState) {
	t.Helper()
	f := newBreakerFleet(t, n, nil, func(w *world) {
		w.sb.Fake.Always(herokufake.OAuthToken, herokufake.Respond(status))
		w.sb.Fake.ExpireAccessTokens()
	})
	batch := f.wave(f.ids)
	f.waitHeld(t)
	b, _ := f.store.Batch(context.Background(), batch)
	st := f.breakerState()
	t.Logf("breaker: %s; batch %d failed, %d succeeded, %d waiting", breaker.Describe(st), b.Failed, b.Succeeded, b.InFlight)
	return f, b, st
}
