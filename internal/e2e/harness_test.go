package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
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
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/worker"
	"github.com/rekeyhq/rekey/tasks"
)

// Timings shrunk for tests: dynos restart within a fraction of the grace,
// so a revocation that waits for its grace never finds a dyno still
// running the old credential.
const (
	testGrace        = 2 * time.Second
	testPrivateGrace = 3 * time.Second
	restartDelay     = 200 * time.Millisecond
	privateRestart   = 500 * time.Millisecond
	pollInterval     = 100 * time.Millisecond
)

// world is one test's Redis database, sandbox (fake Heroku and demo issuer
// over HTTP) and rekey's store and queue on them.
type world struct {
	t     *testing.T
	redis *redistest.Redis
	sb    *sandbox.Sandbox
	cfg   *config.Config
	store *store.Store
	queue *asynq.Client
	insp  *asynq.Inspector
	// reg registers instances; its Heroku client exchanges grant codes.
	reg *registry.Registry
	hc  *heroku.Client
}

// worldParams add options to the sandbox's fakes.
type worldParams struct {
	fake []herokufake.Option
	demo []issuer.DemoOption
	// redis replaces the test's private database (a server the test
	// restarts).
	redis *redistest.Redis
	// store adds options to the world's store, which the workers share.
	store []store.Option
}

func newWorld(t *testing.T, p worldParams) *world {
	t.Helper()
	r := p.redis
	if r == nil {
		r = redistest.New(t)
	}
	fakeOpts := append([]herokufake.Option{herokufake.WithRestartDelay(restartDelay, privateRestart)}, p.fake...)
	sb, err := sandbox.Start(sandbox.Params{Fake: fakeOpts, Demo: p.demo})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	// The store is built from the environment a worker process would get,
	// through rekey's own configuration.
	cfg, err := config.Load(sandbox.Lookup(sb.Env(r.URL)))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := cfg.Sealer()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, redis: r, sb: sb, cfg: cfg, store: store.New(r.Client, sealer, p.store...),
		queue: asynq.NewClientFromRedisClient(r.Client), insp: asynq.NewInspectorFromRedisClient(r.Client)}
	sb.Checker.UseStore(w.store)
	w.hc = w.herokuClient(nil, nil)
	w.reg = registry.New(w.store, w.hc, registry.WithLocalStandIn(logplex.LocalStandIn(cfg.HerokuAPIURL)))
	return w
}

// herokuClient is rekey's Heroku client on the sandbox; lim and hc may be nil.
func (w *world) herokuClient(lim heroku.Limiter, hc *http.Client) *heroku.Client {
	w.t.Helper()
	opts := []heroku.Option{heroku.WithAPIURL(w.cfg.HerokuAPIURL), heroku.WithIDURL(w.cfg.HerokuIDURL),
		heroku.WithTokenStore(w.store), heroku.WithOAuthClientSecret(w.cfg.OAuthClientSecret),
		heroku.WithV1Credentials(w.cfg.AddonID, w.cfg.AddonPassword)}
	if lim != nil {
		opts = append(opts, heroku.WithLimiter(lim))
	}
	if hc != nil {
		opts = append(opts, heroku.WithHTTPClient(hc))
	}
	c, err := heroku.NewClient(opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// provision creates n sample instances on the fake Heroku and the demo
// issuer and registers them with rekey.
func (w *world) provision(n int, mix sandbox.Mix) []sandbox.Sample {
	w.t.Helper()
	samples, err := w.sb.Provision(context.Background(), w.reg, 1, n, mix)
	if err != nil {
		w.t.Fatal(err)
	}
	return samples
}

// workerParams shape an in-process worker. Zero values take the defaults
// noted.
type workerParams struct {
	// concurrency defaults to 10.
	concurrency int
	// httpClient is the Heroku client's; nil means rekey's default.
	httpClient *http.Client
	// retryDelay nil means rekey's own (retry.Delay).
	retryDelay asynq.RetryDelayFunc
	// logLevel defaults to warn; logs go to the world's log buffer.
	logLevel string
	// wrapIssuer and wrapHeroku let a test watch the handlers' calls.
	wrapIssuer func(issuer.Issuer) issuer.Issuer
	wrapHeroku func(handlers.Heroku) handlers.Heroku
	// sweep runs the reconcile sweep beside the worker, as `rekey worker`
	// does, every 200 ms and with no slack.
	sweep bool
	// holds, when set, turns holds and the customer's log notices on, as
	// `rekey worker` does with REKEY_HOLD_*.
	holds *handlers.HoldPolicy
	// issuerURL replaces the sandbox's issuer (a hostile one).
	issuerURL string
	// wave counts the bulk runs' outcomes for the pacing feeder, as `rekey
	// worker` does (handlers.Deps.Wave).
	wave bool
}

// runningWorker is an in-process worker; its logs collect in log.
type runningWorker struct {
	log *syncBuffer
	// stop ends the worker, as SIGTERM ends a process, and waits for it;
	// the test's end does the same for a worker still running.
	stop func()
}

// startWorker runs rekey's worker in process, assembled as `rekey worker`
// assembles it, until the test ends.
func (w *world) startWorker(p workerParams) *runningWorker {
	w.t.Helper()
	if p.logLevel == "" {
		p.logLevel = "warn"
	}
	rw := &runningWorker{log: &syncBuffer{}}
	log := logging.New(logging.Options{Service: "worker", Level: p.logLevel, Out: rw.log})
	// A generous budget with short pauses after a 429: the budget is not
	// what these tests are about.
	lim, err := ratelimit.New(w.redis.Client, ratelimit.Params{PerHour: 1_000_000,
		Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		w.t.Fatal(err)
	}
	var iss issuer.Issuer
	if p.issuerURL == "" {
		p.issuerURL = w.cfg.IssuerURL
	}
	if iss, err = issuer.NewHTTP(p.issuerURL, w.cfg.IssuerSecret, w.cfg.IssuerOptions(w.store)...); err != nil {
		w.t.Fatal(err)
	}
	var hc handlers.Heroku = w.herokuClient(lim, p.httpClient)
	if p.wrapIssuer != nil {
		iss = p.wrapIssuer(iss)
	}
	if p.wrapHeroku != nil {
		hc = p.wrapHeroku(hc)
	}
	deps := &handlers.Deps{Store: w.store, Heroku: hc, Issuer: iss, Enqueuer: w.queue, Tasks: w.insp,
		Grace: testGrace, PrivateSpaceGrace: testPrivateGrace}
	if p.wave {
		deps.Wave = pacing.NewOutcomes(w.redis.Client, nil)
	}
	if p.holds != nil {
		deps.HoldStore, deps.Holds = w.store, *p.holds
		deps.CustomerLog = logplex.NewNotifier(w.store, logplex.NewClient(0, logplex.WithLocalStandIn(logplex.LocalStandIn(w.cfg.HerokuAPIURL))), nil, log)
	}
	mux, err := handlers.NewMux(deps)
	if err != nil {
		w.t.Fatal(err)
	}
	wk, err := worker.New(worker.Params{Redis: w.redis.Client, Handler: mux, Concurrency: p.concurrency,
		Logger: log, PollInterval: pollInterval, RetryDelay: p.retryDelay})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	running := 1
	go func() { done <- wk.Run(ctx) }()
	if p.sweep {
		sweeper := reconcile.New(reconcile.Params{Store: w.store, Enqueuer: w.queue, Inspector: w.insp,
			Logger: log, Interval: 200 * time.Millisecond, Slack: time.Millisecond})
		running++
		go func() { done <- sweeper.Run(ctx) }()
	}
	var once sync.Once
	rw.stop = func() {
		once.Do(func() {
			cancel()
			for range running {
				if err := <-done; err != nil {
					w.t.Errorf("worker: %v", err)
				}
			}
			_ = lim.Close()
		})
	}
	w.t.Cleanup(func() {
		rw.stop()
		if w.t.Failed() {
			w.t.Logf("worker log:\n%s", rw.log.String())
		}
	})
	return rw
}

// processEnv is the environment of a rekey process on the world: the
// sandbox's, with the tests' graces, a budget that is never the limit and
// warnings only in the log.
func (w *world) processEnv() map[string]string {
	env := w.sb.Env(w.redis.URL)
	env["REKEY_GRACE"] = testGrace.String()
	env["REKEY_PRIVATE_SPACE_GRACE"] = testPrivateGrace.String()
	env["REKEY_HEROKU_RATE"] = "1000000"
	env["REKEY_LOG_LEVEL"] = "warn"
	return env
}

// fastRetry keeps asynq's retries of failed and waiting tasks under a
// second, so retry tests do not wait for asynq's minutes-long back-off.
func fastRetry(n int, err error, t *asynq.Task) time.Duration {
	return min(retry.Delay(n, err, t), 200*time.Millisecond)
}

// rotate requests rotations of ids through the fleet producer, as the CLI
// and the HTTP API do.
func (w *world) rotate(ids ...string) fleet.Result {
	w.t.Helper()
	res, err := fleet.NewProducer(w.store, w.queue).Rotate(context.Background(),
		fleet.Request{InstanceIDs: ids, Reason: "e2e", Queue: tasks.QueueDefault})
	if err != nil {
		w.t.Fatalf("rotate: %v", err)
	}
	return res
}

// waitFor polls cond until it holds, failing the test after within with
// cond's last account of where things stand.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %s: %s", what, within, state)
		}
		<-tick.C
	}
}

// waitBatch waits until no rotation of the batch is in flight.
func (w *world) waitBatch(batchID string, within time.Duration) store.Batch {
	w.t.Helper()
	var b store.Batch
	waitFor(w.t, within, "batch "+batchID, func() (bool, string) {
		var err error
		if b, err = w.store.Batch(context.Background(), batchID); err != nil {
			return false, err.Error()
		}
		return b.Done, fmt.Sprintf("%+v", b)
	})
	return b
}

// waitRevoked waits until no credential waits for revocation any more.
func (w *world) waitRevoked(within time.Duration) {
	w.t.Helper()
	waitFor(w.t, within, "revocations", func() (bool, string) {
		n, err := w.store.PendingRevocations(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("%d credentials wait for revocation", n)
	})
}

// waitTask waits until the task is completed or archived and returns it.
func (w *world) waitTask(queue, id string, within time.Duration) *asynq.TaskInfo {
	w.t.Helper()
	var info *asynq.TaskInfo
	waitFor(w.t, within, "task "+id, func() (bool, string) {
		var err error
		if info, err = w.insp.GetTaskInfo(queue, id); err != nil {
			return false, err.Error()
		}
		done := info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived
		return done, fmt.Sprintf("state %s, retried %d, last error %q", info.State, info.Retried, info.LastErr)
	})
	return info
}

// allTasks lists every task in every queue and state, completed ones
// included (rekey keeps them for a day).
func (w *world) allTasks() []*asynq.TaskInfo {
	w.t.Helper()
	queues, err := w.insp.Queues()
	if err != nil {
		w.t.Fatal(err)
	}
	var out []*asynq.TaskInfo
	for _, q := range queues {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			w.insp.ListPendingTasks, w.insp.ListActiveTasks, w.insp.ListScheduledTasks,
			w.insp.ListRetryTasks, w.insp.ListArchivedTasks, w.insp.ListCompletedTasks,
		} {
			for page := 1; ; page++ {
				infos, err := list(q, asynq.PageSize(500), asynq.Page(page))
				if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
					w.t.Fatalf("list tasks of %s: %v", q, err)
				}
				out = append(out, infos...)
				if len(infos) < 500 {
					break
				}
			}
		}
	}
	return out
}

// herokuCalls counts the fake Heroku's calls to endpoints, any status.
func herokuCalls(f *herokufake.Fake, endpoints ...herokufake.Endpoint) int {
	return len(f.Calls(endpoints...))
}

// syncBuffer is a bytes.Buffer safe for concurrent writers, such as a
// logger shared by a worker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ownClient sends the tests' own requests on a transport of its own: an
// httptest server's Close calls CloseIdleConnections on
// http.DefaultTransport, which breaks a POST or DELETE answered with no
// body at that moment (internal/issuer's newTransport says how).
var ownClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
