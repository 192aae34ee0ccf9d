//go:build browser

package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/testbuf"
	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/internal/worker"
)

// Timings of the browser test's world: a grace short enough that the old
// credential is revoked while the test watches, and dyno restarts well
// inside it, so the revocation never finds a dyno on the old credential.
const (
	browserGrace        = 5 * time.Second
	browserRestart      = 200 * time.Millisecond
	browserPollInterval = 200 * time.Millisecond
)

// browserWorld is rekey as it runs on Heroku, inside one test: the web
// process on httptest, a worker, a real Redis, and the sandbox's fake
// Heroku and demo issuer over HTTP. Both processes are assembled from the
// configuration the environment would give them, as cmd/rekey assembles them.
type browserWorld struct {
	t     *testing.T
	cfg   *config.Config
	sb    *sandbox.Sandbox
	st    *store.Store
	insp  *asynq.Inspector
	web   *httptest.Server
	logs  *lockedBuffer
	redis *redistest.Redis
	// sample is the V3 instance the customer signs in to.
	sample sandbox.Sample
	// other is a second V3 instance, another add-on of the same customer,
	// which they sign in to in a second tab of the same browser.
	other sandbox.Sample
	// ssoTokens are the resource_tokens and user_scoped_resource_tokens
	// of every sign-in form Heroku's page served.
	ssoTokens []string
	// ssoURL is the page that posts Heroku's first sign-in form for
	// sample, the same form every time it is opened.
	ssoURL string
	// statusPolls counts the requests for /dashboard/status, the page's poll.
	statusPolls atomic.Int64
	// rotatePosts counts the POSTs of the rotate form.
	rotatePosts atomic.Int64
	// rotateGate, when set, holds every POST of the rotate form until it
	// is closed: the browser waits for its answer, as on a slow network.
	rotateGate atomic.Pointer[chan struct{}]
}

func newBrowserWorld(t *testing.T) *browserWorld {
	t.Helper()
	w := &browserWorld{t: t, redis: redistest.New(t), logs: &lockedBuffer{}}
	sb, err := sandbox.Start(sandbox.Params{Fake: []herokufake.Option{
		herokufake.WithRestartDelay(browserRestart, 2*browserRestart)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	w.sb = sb
	w.cfg = w.config()
	sealer, err := w.cfg.Sealer()
	if err != nil {
		t.Fatal(err)
	}
	w.st = store.New(w.redis.Client, sealer)
	w.insp = asynq.NewInspectorFromRedisClient(w.redis.Client)
	sb.Checker.UseStore(w.st)
	w.provision()
	w.startWorker()
	w.startWeb()
	t.Cleanup(w.dumpLogsOnFailure)
	return w
}

// config loads rekey's configuration from the environment the sandbox
// gives a process, plus the web process's secrets, fresh for every run.
func (w *browserWorld) config() *config.Config {
	w.t.Helper()
	env := w.sb.Env(w.redis.URL)
	env["REKEY_GRACE"] = browserGrace.String()
	env["REKEY_PRIVATE_SPACE_GRACE"] = browserGrace.String()
	env["REKEY_API_TOKEN"] = randomSecret()
	env["REKEY_DASHBOARD_PASSWORD"] = randomSecret()
	env["HEROKU_SSO_SALT"] = randomSecret()
	// One rotation a day from the dashboard's button, so the test sees the
	// second one refused; the grace limit is off, as the grace is seconds.
	env["REKEY_CUSTOMER_ROTATIONS_PER_DAY"] = "1"
	env["REKEY_CUSTOMER_ONE_PER_GRACE"] = "false"
	cfg, err := config.Load(sandbox.Lookup(env))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := errors.Join(cfg.RequireWeb(), cfg.RequireWorker()); err != nil {
		w.t.Fatal(err)
	}
	return cfg
}

// provision creates two V3 instances on the fake Heroku and the demo
// issuer and registers them through the registry, exchanging their grant
// codes: sample, and the other add-on.
func (w *browserWorld) provision() {
	w.t.Helper()
	samples, err := w.sb.Provision(context.Background(), registry.New(w.st, w.herokuClient(nil, nil),
		registry.WithLocalStandIn(logplex.LocalStandIn(w.sb.HerokuURL))), 1, 2, sandbox.Mix{})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, s := range samples {
		if s.APIVersion != store.APIv3 {
			w.t.Fatalf("provisioned instance %s as %s, want v3", s.ID, s.APIVersion)
		}
	}
	w.sample, w.other = samples[0], samples[1]
}

// herokuClient is rekey's Heroku client on the fake Heroku; lim and observe
// may be nil, as for the web process.
func (w *browserWorld) herokuClient(lim *ratelimit.Limiter, observe func(heroku.CallInfo)) *heroku.Client {
	w.t.Helper()
	opts := []heroku.Option{heroku.WithAPIURL(w.cfg.HerokuAPIURL), heroku.WithIDURL(w.cfg.HerokuIDURL),
		heroku.WithTokenStore(w.st), heroku.WithUserAgent("rekey"),
		heroku.WithOAuthClientSecret(w.cfg.OAuthClientSecret),
		heroku.WithV1Credentials(w.cfg.AddonID, w.cfg.AddonPassword)}
	if lim != nil {
		opts = append(opts, heroku.WithLimiter(lim))
	}
	if observe != nil {
		opts = append(opts, heroku.WithObserver(observe))
	}
	c, err := heroku.NewClient(opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// startWorker runs a worker in process until the test ends: the shared
// budget, the metrics recorder, the HTTP issuer and the handlers, as
// `rekey worker` builds them, with a short poll interval.
func (w *browserWorld) startWorker() {
	w.t.Helper()
	log := logging.New(logging.Options{Service: "worker", Level: "info", Out: w.logs})
	lim, err := ratelimit.New(w.redis.Client, ratelimit.Params{PerHour: w.cfg.HerokuRate})
	if err != nil {
		w.t.Fatal(err)
	}
	iss, err := issuer.NewHTTP(w.cfg.IssuerURL, w.cfg.IssuerSecret, w.cfg.IssuerOptions(w.st)...)
	if err != nil {
		w.t.Fatal(err)
	}
	rec := metrics.NewRecorder(w.st, lim, log)
	deps := &handlers.Deps{Store: w.st, Heroku: w.herokuClient(lim, rec.HerokuCall), Issuer: iss,
		Enqueuer: asynq.NewClientFromRedisClient(w.redis.Client), Observer: rec,
		Grace: w.cfg.Grace, PrivateSpaceGrace: w.cfg.PrivateSpaceGrace}
	mux, err := handlers.NewMux(deps)
	if err != nil {
		w.t.Fatal(err)
	}
	wk, err := worker.New(worker.Params{Redis: w.redis.Client, Handler: mux, Logger: log,
		Concurrency: w.cfg.Concurrency, PollInterval: browserPollInterval})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rec.Run(ctx, time.Second) })
	wg.Go(func() {
		if err := wk.Run(ctx); err != nil {
			w.t.Errorf("worker: %v", err)
		}
	})
	w.t.Cleanup(func() { cancel(); wg.Wait(); _ = lim.Close() })
}

// startWeb serves the web process's handler, built as `rekey web` builds it.
func (w *browserWorld) startWeb() {
	w.t.Helper()
	log := logging.New(logging.Options{Service: "web", Level: "info", Out: w.logs})
	queue := asynq.NewClientFromRedisClient(w.redis.Client)
	h, err := web.New(web.Params{Store: w.st, Producer: fleet.NewProducer(w.st, queue),
		Registry: registry.New(w.st, w.herokuClient(nil, nil)), Inspector: w.insp, Enqueuer: queue,
		Metrics:  metrics.NewCollector(w.st, w.insp, log).Handler(),
		APIToken: w.cfg.APIToken, DashboardPassword: w.cfg.DashboardPassword, SSOSalt: w.cfg.SSOSalt,
		Grace: w.cfg.Grace, PrivateSpaceGrace: w.cfg.PrivateSpaceGrace,
		CustomerLimits:  store.CustomerLimits{PerDay: w.cfg.CustomerRotationsPerDay, OnePerGrace: w.cfg.CustomerOnePerGrace},
		InsecureCookies: w.cfg.InsecureCookies, Logger: log})
	if err != nil {
		w.t.Fatal(err)
	}
	w.web = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dashboard/status" {
			w.statusPolls.Add(1)
		}
		if r.URL.Path == "/dashboard/rotate" && r.Method == http.MethodPost {
			w.rotatePosts.Add(1)
			if gate := w.rotateGate.Load(); gate != nil {
				<-*gate
			}
		}
		h.ServeHTTP(rw, r)
	}))
	w.t.Cleanup(w.web.Close)
}

// waitStore polls the store until ok says the instance is where the test
// wants it, failing the test after the deadline.
func (w *browserWorld) waitStore(what string, ok func(store.Instance) bool) store.Instance {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		in, err := w.st.Instance(context.Background(), w.sample.ID)
		if err != nil {
			w.t.Fatal(err)
		}
		if ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("waited a minute for %s; instance is %+v", what, in)
		}
		<-tick.C
	}
}

func (w *browserWorld) dumpLogsOnFailure() {
	if w.t.Failed() {
		w.t.Logf("web and worker logs:\n%s", w.logs.String())
	}
}

// lockedBuffer is a log sink the test's goroutines share.
type lockedBuffer = testbuf.Buffer

// randomSecret is a fresh secret for one run, long enough for every rule
// the configuration checks.
func randomSecret() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
