package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/reconcile"
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
	queue *asynq.Client
}

// loadConfig reads the environment.
func loadConfig(env *environ) (*config.Config, error) {
	return config.Load(env.lookup)
}

// newLogger builds the root logger of a process.
func newLogger(env *environ, cfg *config.Config, service string, console bool) zerolog.Logger {
	return logging.New(logging.Options{Service: service, Level: cfg.LogLevel, Console: console, Out: env.stderr})
}

// openApp connects to Redis and builds the store and the queue client.
func openApp(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*app, error) {
	opt, err := cfg.RedisOptions()
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("connect to REDIS_URL (%s): %w", opt.Addr, err)
	}
	sealer, err := cfg.Sealer()
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &app{cfg: cfg, log: log, rdb: rdb, store: store.New(rdb, sealer, store.WithMaxPrevious(cfg.MaxPrevious)),
		queue: asynq.NewClientFromRedisClient(rdb)}, nil
}

func (a *app) Close() error {
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
	if a.cfg.Issuer != config.IssuerHTTP {
		return nil, fmt.Errorf("REKEY_ISSUER=%s runs only inside 'rekey dev'; a worker needs http", a.cfg.Issuer)
	}
	return issuer.NewHTTP(a.cfg.IssuerURL, a.cfg.IssuerSecret)
}

// runWorker runs the worker and the reconcile sweep until ctx is done.
func (a *app) runWorker(ctx context.Context, iss issuer.Issuer, concurrency int) error {
	lim, err := a.limiter()
	if err != nil {
		return err
	}
	defer lim.Close()
	rec := metrics.NewRecorder(a.store, lim, a.log)
	hc, err := a.heroku(lim, rec.HerokuCall)
	if err != nil {
		return err
	}
	deps := &handlers.Deps{Store: a.store, Heroku: hc, Issuer: iss, Enqueuer: a.queue, Observer: rec,
		Grace: a.cfg.Grace, PrivateSpaceGrace: a.cfg.PrivateSpaceGrace, MinGrace: a.cfg.GraceFloor()}
	w, err := worker.New(worker.Params{Redis: a.rdb, Deps: deps, Concurrency: concurrency, Logger: a.log})
	if err != nil {
		return err
	}
	sweep := reconcile.New(reconcile.Params{Store: a.store, Enqueuer: a.queue,
		Inspector: asynq.NewInspectorFromRedisClient(a.rdb), Logger: a.log})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = sweep.Run(ctx) }()
	go func() { defer wg.Done(); rec.Run(ctx, 5*time.Second) }()
	err = w.Run(ctx)
	wg.Wait()
	return err
}

func runWorkerCmd(ctx context.Context, env *environ, args []string) error {
	if len(args) > 0 {
		return errUsage
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if err := cfg.RequireWorker(); err != nil {
		return err
	}
	log := newLogger(env, cfg, "worker", false)
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	iss, err := a.issuer()
	if err != nil {
		return err
	}
	return a.runWorker(ctx, iss, cfg.Concurrency)
}
