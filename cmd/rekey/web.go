package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// shutdownTimeout is how long the web process lets requests in flight
// finish after SIGTERM; Heroku kills the dyno 30 seconds after it. A
// variable so that tests wait less.
var shutdownTimeout = 20 * time.Second

// grantDrain is how much longer the web process waits, once its shutdown
// cut off the requests still in flight, for an oauth_grant being exchanged
// and stored: their handlers go on (registry.WaitGrants). With
// shutdownTimeout, the 2 s the last flush of its Heroku call counts may
// take and the 2 s a closing process may take to withdraw its keys'
// announcement, it ends 2 s within the 30 seconds Heroku gives a dyno,
// whose end cuts what is still under way (R12).
var grantDrain = 4 * time.Second

func newWebCmd(env *environ) *cobra.Command {
	return &cobra.Command{
		Use:         "web",
		Annotations: serves,
		Short:       "Run the HTTP API, SSO dashboard, /monitoring and /metrics (Procfile: web)",
		Long: `Serves on PORT, until SIGTERM: the HTTP API (REKEY_API_TOKEN), the customers' SSO dashboard,
/monitoring (asynqmon, REKEY_DASHBOARD_PASSWORD), /metrics and /healthz. It serves at once, Redis or
not: /healthz and /metrics say when Redis is down.`,
		Example: `  PORT=8080 rekey web
  curl -s localhost:8080/healthz`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runWeb(c.Context(), env) },
	}
}

// runWeb serves the HTTP API, the SSO dashboard, /monitoring, /metrics and
// /healthz on PORT until ctx is done (Procfile: web).
func runWeb(ctx context.Context, env *environ) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if err := cfg.RequireWeb(); err != nil {
		return err
	}
	log := newLogger(env, cfg, "web", false)
	a, ctx, err := openService(ctx, cfg, log, "web")
	if err != nil {
		return err
	}
	defer a.Close()
	h, err := a.webHandler()
	if err != nil {
		return err
	}
	// Serve at once, Redis or not: /healthz and /metrics say when it is down.
	a.checkSealedWhenUp(ctx)
	go a.webCalls.Run(ctx, metrics.FlushInterval)
	err = serve(ctx, a, h)
	a.waitGrants()
	flushCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	a.webCalls.Flush(flushCtx)
	cancel()
	return a.refused(ctx, err)
}

// waitGrants waits up to grantDrain for the grants the web process's
// registry is still exchanging or storing, and logs one it leaves behind.
func (a *app) waitGrants() {
	if a.webRegistry == nil {
		return
	}
	if n := a.webRegistry.GrantsInFlight(); n > 0 {
		a.log.Info().Int64("grants", n).Dur("deadline", grantDrain).Str("detail", "oauth_grant exchanges under way "+
			"when the shutdown cut their requests off; Heroku spent their codes, so their tokens are stored first").Msg("web_waiting_for_grants")
	}
	ctx, cancel := context.WithTimeout(context.Background(), grantDrain)
	defer cancel()
	if a.webRegistry.WaitGrants(ctx) != nil {
		a.log.Warn().Dur("waited", grantDrain).Str("detail", "an oauth_grant's exchange or the storing of its tokens "+
			"was still under way: its PUT answered nothing, and the add-on may need provisioning again").Msg("web_exit_with_grant_in_flight")
	}
}

// webHandler builds the web process's handler from the app's dependencies.
func (a *app) webHandler() (http.Handler, error) {
	a.webCalls = metrics.NewRecorder(a.store, nil, a.quietLog())
	hc, err := a.heroku(nil, a.webCalls.HerokuCall)
	if err != nil {
		return nil, err
	}
	window, err := globalWindow(a.cfg)
	if err != nil {
		return nil, err
	}
	inspector := asynq.NewInspectorFromRedisClient(a.rdb)
	a.webRegistry = a.registry(hc)
	return web.New(web.Params{
		Store:             a.store,
		Producer:          a.producer(),
		Registry:          a.webRegistry,
		Inspector:         inspector,
		Metrics:           a.metricsHandler(inspector),
		Enqueuer:          a.queue,
		APIToken:          a.cfg.APIToken,
		APITokenPrevious:  a.cfg.APITokenPrevious,
		DashboardPassword: a.cfg.DashboardPassword,
		SSOSalt:           a.cfg.SSOSalt,
		Grace:             a.cfg.Grace,
		PrivateSpaceGrace: a.cfg.PrivateSpaceGrace,
		MaxGrace:          a.cfg.GraceCeiling(),
		MinGrace:          a.cfg.GraceFloor(),
		Window:            window,
		CustomerLimits: store.CustomerLimits{PerDay: a.cfg.CustomerRotationsPerDay,
			OnePerGrace: a.cfg.CustomerOnePerGrace},
		InsecureCookies: a.cfg.InsecureCookies,
		Logger:          a.log,
		Now:             a.clock.Now,
		RedisFull:       a.redisFull,
	})
}

// memoryInfo reads Redis's INFO memory and stats sections, one call each
// (INFO takes one section before Redis 7).
func (a *app) memoryInfo(ctx context.Context) (string, error) {
	memory, err := a.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return "", err
	}
	stats, err := a.rdb.Info(ctx, "stats").Result()
	return memory + stats, err
}

// metricsHandler serves /metrics: rekey_redis_up from a ping per scrape,
// rekey_redis_may_evict and rekey_redis_evicted_keys_total from INFO,
// rekey_redis_writable from a write, rekey_redis_replicated from a wait
// for the replicas REKEY_REDIS_WAIT_REPLICAS asks for,
// the start-up check's rekey_sealed_unreadable, and, while Redis answers,
// what the Collector reads from it.
func (a *app) metricsHandler(inspector *asynq.Inspector) http.Handler {
	h := metrics.NewHandler(metrics.HandlerParams{
		Collector: metrics.NewCollector(a.store, inspector, a.log, metrics.WithPacedBacklog(a.rdb),
			metrics.WithClock(a.clock.Now)),
		Ping:       func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() },
		Info:       a.memoryInfo,
		Write:      a.store.CheckWritable,
		Durable:    a.store.Durable,
		Unreadable: a.unreadableCount,
		ClockOffset: func() (time.Duration, bool) {
			s, ok := a.clock.Offset()
			return s.Offset, ok
		},
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.webCalls != nil {
			flushForScrape(r.Context(), a.webCalls)
		}
		h.ServeHTTP(w, r)
	})
}

// scrapeFlushTimeout bounds how long a scrape waits to add the web
// process's own counts to Redis before it reads them back: Prometheus gives
// up on a scrape after 10 s by default, and a scrape while Redis stalls
// must still answer rekey_redis_up 0 within them.
const scrapeFlushTimeout = 2 * time.Second

// flushForScrape adds rec's counts to Redis, waiting at most
// scrapeFlushTimeout. go-redis may overrun its context's deadline on a
// connection that stopped answering (retries, a new connection's
// handshake), so the wait is bounded here too; a flush still under way
// goes on in the background, and counts it fails to add are kept for the
// next flush (Recorder.Flush).
func flushForScrape(ctx context.Context, rec *metrics.Recorder) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scrapeFlushTimeout)
	done := make(chan struct{})
	go func() {
		defer cancel()
		defer close(done)
		rec.Flush(ctx)
	}()
	select {
	case <-done:
	case <-time.After(scrapeFlushTimeout):
	}
}

// serve runs h on PORT and shuts down gracefully when ctx is done.
func serve(ctx context.Context, a *app, h http.Handler) error {
	listening := func(net.Addr) { a.log.Info().Int("port", a.cfg.Port).Msg("web listening") }
	return serveAddr(ctx, a.log, fmt.Sprintf("web on PORT %d", a.cfg.Port), net.JoinHostPort("", strconv.Itoa(a.cfg.Port)), h,
		listening, "web shutting down")
}

// serveAddr runs h on addr and shuts down gracefully when ctx is done. It
// calls listening with the address bound (a port 0 made real), so that a
// log line saying so is true, and logs stopping before it shuts down; its
// errors start with name.
func serveAddr(ctx context.Context, log zerolog.Logger, name, addr string, h http.Handler, listening func(bound net.Addr), stopping string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	listening(ln.Addr())
	var open atomic.Int64 // connections not yet closed or hijacked
	srv := &http.Server{
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      3 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	log.Info().Int64("open_connections", open.Load()).Dur("deadline", shutdownTimeout).
		Str("detail", "takes no new connection and lets requests in flight finish until the deadline; "+
			"a second signal exits at once").Msg(stopping)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
		// A slow client is no failure of the process: cut it off and
		// exit 0, as a stop by SIGTERM does.
		cut := open.Load()
		_ = srv.Close()
		log.Warn().Int64("connections_cut", cut).Dur("deadline", shutdownTimeout).Msg("web_shutdown_forced")
	} else if err != nil {
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
