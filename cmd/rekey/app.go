package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/redisclock"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/worker"
)

// app holds the dependencies every command shares: one Redis pool, the
// store, and an asynq client on the same pool.
type app struct {
	cfg   *config.Config
	log   zerolog.Logger
	rdb   *redis.Client
	store *store.Store
	// schedules says the process is a clock: it announces its maintenance
	// window with its settings, which the operator commands quote
	// (fleetWindow).
	schedules bool
	// clock is Redis's time as this process reads it: the store, the
	// handlers, the sweep and the scheduler read it, so that every process
	// writes and checks revoke times on one clock (I2). keepClock keeps it
	// measured in the long-running processes; openApp measures it once.
	clock *redisclock.Clock
	// local is this machine's own clock, which a revocation's time must
	// have passed too (handlers.Deps.Local).
	local     func() time.Time
	clockOnce sync.Once
	// queue holds bulk rotate tasks for the pacing feeder (internal/pacing).
	queue *pacing.Client
	// redact removes REDIS_URL's password from an error's text.
	redact func(string) string
	// health watches Redis in the long-running processes (openService);
	// nil in commands that check Redis once and exit when it is down.
	health *health.Redis
	// stopWatch ends the health watcher; nil without one.
	stopWatch context.CancelFunc
	// withdrawKeys stops announcing this process's keys and withdraws the
	// announcement (announceKeys); nil outside long-running processes.
	withdrawKeys func()
	// announce starts a worker's announcement of its keys, once they
	// passed keysChecked (openService); nil in other processes, which
	// announce from the start.
	announce func()
	// serverChecked is closed once openService's check of the server
	// (checkServer) is done or abandoned; nil outside long-running
	// processes (openApp checks the server before it returns).
	serverChecked chan struct{}
	// unreadable is the start-up check's count of sealed values no key of
	// REKEY_ENCRYPTION_KEYS opens, -1 until the check has run (service.go).
	unreadable atomic.Int64
	// webRegistry registers instances for the web process's API
	// (webHandler); runWeb waits for its grants before it exits.
	webRegistry *registry.Registry
	// webCalls counts the web process's own calls to Heroku (its
	// registrations' grant exchanges) for rekey_heroku_calls_total; each
	// scrape of /metrics flushes it first, and runWeb flushes it every
	// metrics.FlushInterval and once more before it exits.
	webCalls *metrics.Recorder
}

// loadConfig reads the environment.
func loadConfig(env *environ) (*config.Config, error) {
	return config.Load(env.lookup)
}

// newLogger builds the root logger of a process, and with it warns of
// REKEY_ settings in the environment that rekey does not read: a misspelt
// one is otherwise ignored without a word. Console lines are coloured only
// on a terminal, and never when NO_COLOR is set (no-color.org).
func newLogger(env *environ, cfg *config.Config, service string, console bool) zerolog.Logger {
	noColor := !isTerminal(env.stderr)
	if v, ok := env.lookup("NO_COLOR"); ok && v != "" {
		noColor = true
	}
	log := logging.New(logging.Options{Service: service, Level: cfg.LogLevel, Console: console, NoColor: noColor,
		Out: env.stderr})
	for _, w := range config.Unknown(env.names) {
		log.Warn().Str("detail", w).Msg("unknown_setting")
	}
	return log
}

// noSuchDBError says that the Redis of opt has no database of REDIS_URL's
// number: Redis's own words name neither the number nor where it is.
func noSuchDBError(opt *redis.Options) error {
	return fmt.Errorf("REDIS_URL names database %d, which the Redis at %s does not have "+
		"(a Redis has databases 0 to 15 unless its databases setting says more): "+
		"fix the number after the port in REDIS_URL", opt.DB, opt.Addr)
}

// redisRefused says, in one line, that Redis refused REDIS_URL before it
// ever answered it, in a way no waiting mends (health.RefusedError), and
// what to fix.
func (a *app) redisRefused(r *health.RefusedError) error {
	opt := a.rdb.Options()
	if health.NoSuchDB(r) {
		return noSuchDBError(opt)
	}
	return fmt.Errorf("connect to REDIS_URL (%s): %s", opt.Addr, r)
}

// openApp connects to Redis and builds the store and the queue client. It
// fails at once when Redis does not answer: it serves the one-shot
// commands; the processes that must outlive Redis use openService.
func openApp(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*app, error) {
	a, err := newApp(cfg, log)
	if err != nil {
		return nil, err
	}
	// go-redis logs each failed dial of the ping's retries; the error below
	// says it once, so its lines wait at debug level until Redis answers.
	var pinging atomic.Bool
	pinging.Store(true)
	redis.SetLogger(logging.GoRedis{L: log, Quiet: pinging.Load, Redact: a.redact})
	err = a.rdb.Ping(ctx).Err()
	pinging.Store(false)
	if err != nil {
		_ = a.Close()
		opt := a.rdb.Options()
		msg := fmt.Sprintf("connect to REDIS_URL (%s): %s", opt.Addr, a.redact(err.Error()))
		if health.NoSuchDB(err) {
			return nil, noSuchDBError(opt)
		}
		if hint := health.TLSMismatch(ctx, opt.Addr, opt.TLSConfig != nil); hint != "" {
			return nil, errors.New(msg + "\n" + hint)
		}
		if hint := health.MaxClientsHint(ctx, opt.Addr, opt.TLSConfig != nil); hint != "" {
			return nil, errors.New(msg + "\n" + hint)
		}
		if _, ok := errors.AsType[*net.OpError](err); ok {
			return nil, &redisDownError{msg: msg}
		}
		return nil, errors.New(msg)
	}
	// A one-shot command writes times too (a rotation's request, a
	// pause): on Redis's clock, like the processes'.
	if _, err := a.clock.Measure(ctx); err != nil {
		_ = a.Close()
		return nil, errors.New(a.redact(err.Error()))
	}
	if err := a.checkServer(ctx, false); err != nil {
		_ = a.Close()
		return nil, err
	}
	return a, nil
}

// redisDownError is openApp's failure when nothing answers at REDIS_URL;
// its second line says what to do, and hint replaces that line.
type redisDownError struct{ msg, hint string }

func (e *redisDownError) Error() string {
	hint := e.hint
	if hint == "" {
		hint = "start it, or set REDIS_URL to the Redis rekey's processes share"
	}
	return e.msg + "\nno Redis answered there: " + hint
}

// newApp builds the app's dependencies without talking to Redis, on the
// machine's clock corrected by Redis's once measured.
func newApp(cfg *config.Config, log zerolog.Logger) (*app, error) {
	return newAppOn(cfg, log, time.Now)
}

// newAppOn is newApp on the local clock local, which tests set to play a
// machine whose clock is wrong.
func newAppOn(cfg *config.Config, log zerolog.Logger, local func() time.Time) (*app, error) {
	opt, err := cfg.RedisOptions()
	if err != nil {
		return nil, err
	}
	sealer, err := cfg.Sealer()
	if err != nil {
		return nil, err
	}
	password := secret.New(opt.Password)
	rdb := redis.NewClient(opt)
	rdb.AddHook(logging.RedactErrors{Secrets: []secret.String{password}})
	redact := func(s string) string { return logging.Redact(s, password) }
	clock, err := redisclock.New(redisclock.Params{Redis: rdb, Local: local, Logger: log, Redact: redact})
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, rdb: rdb, clock: clock, local: local, store: store.New(rdb, sealer, store.WithClock(clock.Now),
		store.WithAuditRetention(cfg.AuditRetention), store.WithMaxPrevious(cfg.MaxPrevious),
		store.WithMaxGrace(cfg.GraceCeiling()), store.WithDurability(cfg.RedisWaitReplicas)),
		queue:  pacing.NewClient(asynq.NewClientFromRedisClient(rdb), rdb, clock.Now),
		redact: redact}
	a.unreadable.Store(-1)
	// go-redis logs through zerolog in every command; openService adds
	// the watcher that quiets it during outages.
	redis.SetLogger(logging.GoRedis{L: log, Redact: a.redact})
	return a, nil
}

func (a *app) Close() error {
	if a.withdrawKeys != nil {
		a.withdrawKeys()
	}
	if a.stopWatch != nil {
		a.stopWatch()
	}
	_ = a.queue.Close()
	return a.rdb.Close()
}

// limiter builds the budget shared by every process.
func (a *app) limiter() (*ratelimit.Limiter, error) {
	scope, err := ratelimit.ParseScope(a.cfg.RateScope)
	if err != nil {
		return nil, fmt.Errorf("REKEY_RATE_SCOPE: %w", err)
	}
	return ratelimit.New(a.rdb, ratelimit.Params{PerHour: a.cfg.HerokuRate, Scope: scope})
}

// breaker builds the circuit breaker under REKEY_BREAKER_*.
func (a *app) breaker() (*breaker.Breaker, error) {
	return breaker.New(breaker.Params{Store: a.store, Queues: asynq.NewInspectorFromRedisClient(a.rdb), Logger: a.log,
		Policy: store.BreakerPolicy{Threshold: a.cfg.BreakerThreshold, Fraction: a.cfg.BreakerFraction,
			Window: a.cfg.BreakerWindow}})
}

// heroku builds the Heroku client; lim may be nil for calls outside the
// budget (OAuth exchanges at registration).
func (a *app) heroku(lim heroku.Limiter, observe func(heroku.CallInfo)) (*heroku.Client, error) {
	opts := []heroku.Option{heroku.WithAPIURL(a.cfg.HerokuAPIURL), heroku.WithIDURL(a.cfg.HerokuIDURL),
		heroku.WithTokenStore(a.store), heroku.WithUserAgent("rekey")}
	if !a.cfg.OAuthClientSecret.IsZero() {
		opts = append(opts, heroku.WithOAuthClientSecret(a.cfg.OAuthClientSecret))
	}
	if a.cfg.AddonID != "" && !a.cfg.AddonPassword.IsZero() {
		opts = append(opts, heroku.WithV1Credentials(a.cfg.AddonID, a.cfg.AddonPassword))
	}
	if lim != nil {
		opts = append(opts, heroku.WithLimiter(lim))
	}
	if observe != nil {
		opts = append(opts, heroku.WithObserver(observe))
	}
	return heroku.NewClient(opts...)
}

// issuer builds the credential backend named by REKEY_ISSUER.
func (a *app) issuer() (issuer.Issuer, error) {
	if a.cfg.Issuer == config.IssuerPostgres {
		return a.postgresIssuer()
	}
	if a.cfg.Issuer != config.IssuerHTTP {
		return nil, fmt.Errorf("REKEY_ISSUER=%s runs only inside 'rekey dev'; a worker needs http", a.cfg.Issuer)
	}
	return issuer.NewHTTP(a.cfg.IssuerURL, a.cfg.IssuerSecret, a.cfg.IssuerOptions(a.store)...)
}

// keysRecheck is how long a worker whose keys are not the fleet's waits
// before it compares them again (keysChecked); tests shorten it.
var keysRecheck atomic.Int64

func init() { keysRecheck.Store(int64(30 * time.Second)) }

// keysChecked returns once the worker may take tasks. Every mint needs the
// fingerprint key (a config reused under another id is refused by it): a
// worker that cannot open it would fail every rotation it took, none of
// them the instance's fault, so it refuses to start. While Redis holds
// none, the first worker makes it, and only under the keys the fleet's
// stored values and running processes show are the fleet's
// (store.CheckSealedByTheFleet): made under other keys, it would lock
// every other process out. Until then the worker takes no task and
// compares again every keysRecheck, saying why at each: what keeps it
// waiting may pass on its own (a dead process's announcement expires
// within three minutes; `rekey keys reseal` moves values sealed under a
// later key). A Redis error is no verdict: the comparison is made again,
// after a second doubling to keysRecheck. It returns nil when ctx ends
// first.
func (a *app) keysChecked(ctx context.Context) error {
	wait := time.Second / 2 // doubled before the first wait
	for {
		err := a.store.CheckSealedByTheFleet(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
			return nil
		case errors.Is(err, store.ErrFingerprintKey):
			if m, derr := a.store.DevMark(ctx); derr == nil && m.Claimed {
				// No key of the fleet's opens what `rekey dev` sealed under
				// a key of its own: the advice to add the key back cannot
				// be followed.
				return fmt.Errorf("this worker takes no task: %w; this database holds a 'rekey dev' run's data "+
					"(rekey:dev), sealed under dev's own key: run the fleet on a database of its own, or flush this one first", err)
			}
			return fmt.Errorf("this worker takes no task: %w", err)
		case errors.Is(err, store.ErrNotTheFleetsKeys):
			wait = time.Duration(keysRecheck.Load())
			a.log.Error().Str("detail", "this worker takes no task until REKEY_ENCRYPTION_KEYS is the fleet's: "+err.Error()).
				Dur("recheck_in", wait).Msg("keys_not_the_fleets")
		default:
			wait = min(2*wait, time.Duration(keysRecheck.Load()))
			log := a.quietLog()
			log.Warn().Str("error", a.redact(err.Error())).Dur("recheck_in", wait).Msg("keys_check_failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// runWorker runs the worker and the reconcile sweep until ctx is done. It
// starts them once Redis answers; asynq then rides out later outages on
// its own.
func (a *app) runWorker(ctx context.Context, iss issuer.Issuer, concurrency int) error {
	if err := a.health.Wait(ctx); err != nil {
		return nil // SIGTERM before Redis ever answered
	}
	if err := a.clockMeasured(ctx); err != nil {
		return nil // SIGTERM before Redis ever told its time
	}
	go a.checkSealed(ctx)
	if err := a.keysChecked(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if a.announce != nil {
		a.announce()
	}
	lim, err := a.limiter()
	if err != nil {
		return err
	}
	defer lim.Close()
	rec := metrics.NewRecorder(a.store, lim, a.quietLog())
	hc, err := a.heroku(lim, rec.HerokuCall)
	if err != nil {
		return err
	}
	br, err := a.breaker()
	if err != nil {
		return err
	}
	deps := a.handlerDeps(hc, iss, rec, br)
	a.withHolds(deps, rec)
	mux, err := handlers.NewMux(deps)
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Params{Redis: a.rdb, Handler: mux, Concurrency: concurrency, Logger: a.log,
		QuietLogs: a.health.LibraryError})
	if err != nil {
		return err
	}
	sweep := reconcile.New(reconcile.Params{Store: a.store, Enqueuer: a.queue,
		Inspector: asynq.NewInspectorFromRedisClient(a.rdb), Logger: a.quietLog(), Now: a.clock.Now})
	feeder := a.feeder(lim)
	// The recorder flushes for the last time once the worker has drained:
	// what the tasks finished after SIGTERM did is counted too.
	rctx, drained := context.WithCancel(context.WithoutCancel(ctx))
	defer drained()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); feeder.Run(ctx) }()
	go func() { defer wg.Done(); _ = sweep.Run(ctx) }()
	go func() { defer wg.Done(); rec.Run(rctx, metrics.FlushInterval) }()
	err = w.Run(ctx)
	drained()
	wg.Wait()
	return err
}

// handlerDeps are the task handlers' dependencies, on the app's clock:
// a revoke time written by a promotion on one worker is checked by the
// revoke task on another against the same clock, Redis's (I2).
func (a *app) handlerDeps(hc handlers.Heroku, iss issuer.Issuer, obs handlers.Observer, br handlers.Breaker) *handlers.Deps {
	return &handlers.Deps{Store: a.store, Heroku: hc, Issuer: iss, Enqueuer: a.queue, Observer: obs,
		Tasks: asynq.NewInspectorFromRedisClient(a.rdb),
		Grace: a.cfg.Grace, PrivateSpaceGrace: a.cfg.PrivateSpaceGrace, Breaker: br,
		MinGrace: a.cfg.GraceFloor(), MaxGrace: a.cfg.GraceCeiling(), Paid: pacing.NewPaid(a.rdb),
		Wave: pacing.NewOutcomes(a.rdb, a.clock.Now), Now: a.clock.Now, Local: a.local,
		Measure: func(ctx context.Context) error { _, err := a.clock.Measure(ctx); return err }}
}

func newWorkerCmd(env *environ) *cobra.Command {
	return &cobra.Command{
		Use:         "worker",
		Annotations: serves,
		Short:       "Run the asynq worker: rotate and revoke tasks (Procfile: worker)",
		Long: `Runs rotate and revoke tasks from Redis, and the reconcile sweep, until SIGTERM. Any number of
worker dynos may run; they share one Heroku API budget (REKEY_HEROKU_RATE). The worker starts before
Redis answers and rides out Redis outages. Needs REDIS_URL, REKEY_ENCRYPTION_KEYS and the issuer's
and Heroku's variables (see README.md).`,
		Example: `  rekey worker
  REKEY_CONCURRENCY=20 rekey worker`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runWorkerCmd(c.Context(), env) },
	}
}

func runWorkerCmd(ctx context.Context, env *environ) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if err := cfg.RequireWorker(); err != nil {
		return err
	}
	log := newLogger(env, cfg, "worker", false)
	a, ctx, err := openService(ctx, cfg, log, "worker")
	if err != nil {
		return err
	}
	defer a.Close()
	iss, err := a.issuer()
	if err != nil {
		return err
	}
	if pg, ok := iss.(*pgissuer.Issuer); ok {
		go a.warnAdminSettings(ctx, pg)
	}
	return a.refused(ctx, a.runWorker(ctx, iss, cfg.Concurrency))
}

// warnAdminSettings logs, once, a warning for each default of the
// PostgreSQL admin role's that fails mints or revocations
// (pgissuer.Issuer.AdminSettings), naming what undoes it; the failures
// name it too. It does not hold up the start: a server down now is asked
// no more.
func (a *app) warnAdminSettings(ctx context.Context, pg *pgissuer.Issuer) {
	for _, w := range pg.AdminSettings(ctx) {
		a.log.Warn().Str("detail", w).Msg("postgres_admin_setting")
	}
}

// feeder builds the pacing feeder that releases held bulk rotations at the
// budget's pace (docs/design.md, "Pacing a wave"). With per-instance budgets
// a wave's calls do not compete, so it releases them without tokens.
func (a *app) feeder(lim *ratelimit.Limiter) *pacing.Feeder {
	p := pacing.FeederParams{Redis: a.rdb, Tasks: &fleet.HeldTasks{Store: a.store}, Client: a.queue,
		Queues: asynq.NewInspectorFromRedisClient(a.rdb), Logger: a.quietLog(), Now: a.clock.Now}
	if lim.Params().Scope == ratelimit.ScopeAccount {
		p.Budget = lim
	}
	return pacing.NewFeeder(p)
}

// postgresIssuer builds the built-in PostgreSQL issuer over the servers of
// REKEY_POSTGRES_SERVERS; instances' databases come from their registration.
func (a *app) postgresIssuer() (issuer.Issuer, error) {
	// A usage seen longer ago than the quiet period and a re-check after it
	// releases the hold whether remembered or not; kept twice that, a late
	// re-check still says when the credential was last used.
	memory := max(pgissuer.DefaultUsageMemory, 2*(a.cfg.HoldQuiet+a.cfg.HoldRecheck))
	return pgissuer.New(pgissuer.Params{Servers: a.cfg.PostgresServers, Locator: pgissuer.StoreLocator(a.store),
		Key: a.cfg.PostgresDerivationKey(), UsageMemory: memory})
}
