// Package devstack is `rekey dev`: the whole of rekey in one process, on a
// fake Heroku and a demo issuer (internal/sandbox), rotating sample
// instances while it shows what happens. cmd/rekey parses the flags into
// Options and builds the Stack from the same wiring as `rekey worker` and
// `rekey web`, so what dev runs is what production runs.
//
// dev writes only into a Redis that holds nothing but its own data (guard.go);
// without Options.Once it also serves the web process and prints how to
// reach the dashboard, /monitoring, /metrics and the HTTP API (access.go).
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
)

// Stack is rekey's processes as dev runs them, built by cmd/rekey from the
// configuration Run hands it. Close releases what it holds.
type Stack interface {
	Store() *store.Store
	// Registry registers instances, exchanging V3 grant codes with Heroku.
	Registry() (*registry.Registry, error)
	Producer() *fleet.Producer
	// RunWorker runs the asynq worker and the reconcile sweep until ctx ends.
	RunWorker(ctx context.Context) error
	// WebHandler is the web process's handler (`rekey web`).
	WebHandler() (http.Handler, error)
	Close() error
}

// Options are `rekey dev`'s settings. Zero values take the defaults given.
type Options struct {
	// Once exits when every old credential is revoked; without it dev also
	// serves the web process and runs until ctx ends.
	Once bool
	// Instances is how many sample instances to provision. Default 20.
	Instances int
	// Grace is the rotations' grace period. Default 30 s.
	Grace time.Duration
	// RestartDelay is the fake's dyno restart delay, twice as long in
	// Private Spaces. Default 3 s. It must be under half the grace.
	RestartDelay time.Duration
	// Timeout bounds a run with Once. Zero: onceTimeout, at least 2
	// minutes and longer for many instances or a long grace.
	Timeout time.Duration
	// WebAddr is where the web process listens without Once. Default
	// 127.0.0.1:5000; port 0 picks a free port.
	WebAddr string
	// RedisURL is REDIS_URL; empty runs on an embedded Redis.
	RedisURL string
	// AllowForeignRedis lets dev run on a Redis that holds data it did not
	// write (--allow-foreign-redis). It then leaves that data alone.
	AllowForeignRedis bool
	// AllowLiveWorkers lets dev run on a Redis where other processes'
	// asynq servers poll rekey's queues (--allow-live-workers).
	AllowLiveWorkers bool
	// Issuer is "demo" (the default: the demo webhook issuer, plus one
	// instance whose old credential stays in use for a while, to show a
	// held revocation) or "postgres" (login roles of a local PostgreSQL).
	Issuer string
	// PostgresURL is the admin URL of the local PostgreSQL for Issuer
	// "postgres" (REKEY_DEV_POSTGRES_URL); empty tries 127.0.0.1:5432.
	PostgresURL string
	// Stdout gets the access details and the summary, Stderr the progress.
	Stdout, Stderr io.Writer
	// Tuning are the tuning settings of the environment dev runs in
	// (TuningSettings) that are set, by name: they apply to the run.
	Tuning map[string]string
	// Open builds the Stack on cfg, the configuration of this run.
	Open func(ctx context.Context, cfg *config.Config) (Stack, error)
}

func (o Options) withDefaults() Options {
	o.Instances = orInt(o.Instances, 20)
	o.Grace = orDuration(o.Grace, 30*time.Second)
	o.RestartDelay = orDuration(o.RestartDelay, 3*time.Second)
	if o.WebAddr == "" {
		o.WebAddr = "127.0.0.1:5000"
	}
	if o.Issuer == "" {
		o.Issuer = "demo"
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Instances < 1:
		return fmt.Errorf("--instances must be at least 1, got %d", o.Instances)
	case 2*o.RestartDelay >= o.Grace:
		return fmt.Errorf("--grace (%s) must be longer than twice --restart-delay (%s), or dynos would run revoked credentials", o.Grace, o.RestartDelay)
	case o.Issuer != "demo" && o.Issuer != "postgres":
		return fmt.Errorf("--issuer must be demo or postgres, got %q", o.Issuer)
	case o.Open == nil:
		return errors.New("devstack: Options.Open is required")
	}
	return nil
}

// Run runs `rekey dev` until its rotations are done (Once) or ctx ends.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	// The web address first: taken (the real app's web process on it),
	// the run ends before it writes to REDIS_URL or starts anything.
	var lis net.Listener
	if !o.Once {
		l, err := net.Listen("tcp", o.WebAddr)
		if err != nil {
			return fmt.Errorf("web: listen on %s (choose another with --web-addr): %w", o.WebAddr, err)
		}
		defer l.Close()
		lis = l
	}
	redisURL, stopRedis, err := o.redis()
	if err != nil {
		return err
	}
	defer stopRedis()
	ids := make([]string, o.Instances)
	for i := range ids {
		ids[i] = sandbox.RandomID()
	}
	var pg *sandbox.Postgres
	if o.Issuer == "postgres" {
		if pg, err = sandbox.StartPostgres(ctx, o.PostgresURL); err != nil {
			return err
		}
		defer pg.Close()
	}
	sb, err := sandbox.Start(sandbox.Params{SampleID: func(i int) string { return ids[i-1] },
		Fake: []herokufake.Option{herokufake.WithRestartDelay(o.RestartDelay, 2*o.RestartDelay)}})
	if err != nil {
		return err
	}
	defer sb.Close()
	r := &run{o: o, sb: sb, ids: ids, web: newWebSecrets(), lis: lis, pg: pg}
	err = r.start(ctx, redisURL)
	if err != nil && ctx.Err() != nil {
		// Stopped (Ctrl-C, SIGTERM): whatever failed on the way failed for
		// that, and the caller says what was interrupted in one line.
		return stoppedError{ctx}
	}
	return err
}

// stoppedError is a run that the end of its context stopped before it
// finished. It says why in words, and is the context's error to errors.Is.
type stoppedError struct{ ctx context.Context }

func (e stoppedError) Error() string {
	return "rekey dev stopped before it finished (" + context.Cause(e.ctx).Error() + ")"
}

func (e stoppedError) Unwrap() error { return e.ctx.Err() }

// redis returns REDIS_URL, or starts an embedded Redis when it is unset.
func (o Options) redis() (string, func(), error) {
	if o.RedisURL != "" {
		// Named, without its password: the shell may have exported REDIS_URL
		// for a real app.
		where := "REDIS_URL"
		if opt, err := redis.ParseURL(o.RedisURL); err == nil {
			where = fmt.Sprintf("REDIS_URL (%s/%d)", opt.Addr, opt.DB)
		}
		fmt.Fprintf(o.Stderr, "rekey dev: using %s, not an embedded Redis\n", where)
		return o.RedisURL, func() {}, nil
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return "", nil, fmt.Errorf("start embedded Redis: %w", err)
	}
	fmt.Fprintf(o.Stderr, "rekey dev: REDIS_URL is not set, so rekey runs on an embedded Redis (miniredis at %s); nothing is kept after exit\n", m.Addr())
	return "redis://" + m.Addr() + "/0", m.Close, nil
}

// run is one `rekey dev` run.
type run struct {
	o   Options
	sb  *sandbox.Sandbox
	ids []string
	web webSecrets
	// lis is where the web process listens, without Once.
	lis net.Listener
	cfg *config.Config
	st  Stack
	// pg is the local PostgreSQL with Issuer "postgres"; held is the
	// instance whose old credential a one-off dyno keeps using, with the
	// demo issuer.
	pg   *sandbox.Postgres
	held *sandbox.Sample
}

// holdDemo is how the held instance shows a hold within a dev run: its old
// credential stays in use for a while past the grace (holdDemoUse), and the
// hold is re-checked every few seconds.
const (
	holdDemoQuiet   = "5s"
	holdDemoRecheck = "2s"
)

// holdDemoUse is how long past the grace the held instance's old
// credential stays in use: half the grace, at most 15 s.
func (r *run) holdDemoUse() time.Duration { return holdDemoUse(r.o.Grace) }

func holdDemoUse(grace time.Duration) time.Duration { return min(grace/2, 15*time.Second) }

// minOnceTimeout is the least default timeout of a run with Once.
const minOnceTimeout = 2 * time.Minute

// onceTimeout is the default timeout of a run with Once: what two Heroku
// calls an instance take at the budget's pace (a config update, and an
// OAuth token refresh at most), plus the grace, the held instance's use
// past it, the slowest dyno restart, and a minute to spare; at least
// minOnceTimeout. 120 instances at 4000 calls an hour take over two
// minutes (2m16s here), and a run that rotated them all must not fail for
// it: they get 5m19s.
func onceTimeout(o Options, perHour int) time.Duration {
	work := fleet.Estimate(2*o.Instances, perHour)
	d := work + o.Grace + holdDemoUse(o.Grace) + 2*o.RestartDelay + time.Minute
	return max(minOnceTimeout, d.Round(time.Second))
}

// TuningSettings are the settings of the environment that a dev run takes
// on, as a worker would (Options.Tuning): how fast it goes, how much it
// says and how many connections it opens. dev sets every other one
// itself, from its flags and its fakes.
var TuningSettings = []string{"REKEY_HEROKU_RATE", "REKEY_LOG_LEVEL", "REKEY_CONCURRENCY", "REKEY_REDIS_POOL_SIZE"}

// config is this run's environment: the sandbox's, the short grace, fresh
// web credentials, and the environment's tuning settings.
func (r *run) config(redisURL string) (*config.Config, error) {
	vars := r.sb.Env(redisURL)
	vars["REKEY_GRACE"] = r.o.Grace.String()
	vars["REKEY_MIN_GRACE"] = r.o.Grace.String() // dev's short grace is its floor too
	vars["REKEY_PRIVATE_SPACE_GRACE"] = r.o.Grace.String()
	vars["REKEY_LOG_LEVEL"] = "warn"
	vars["REKEY_INSECURE_COOKIES"] = "true" // dev serves plain http on loopback
	vars["REKEY_HOLD_QUIET"] = holdDemoQuiet
	vars["REKEY_HOLD_RECHECK"] = holdDemoRecheck
	if r.pg != nil {
		r.pg.Env(vars)
	}
	r.web.addTo(vars)
	for _, name := range TuningSettings {
		if v, ok := r.o.Tuning[name]; ok {
			vars[name] = v
		}
	}
	return config.Load(sandbox.Lookup(vars))
}

func (r *run) start(ctx context.Context, redisURL string) error {
	cfg, err := r.config(redisURL)
	if err != nil {
		return err
	}
	r.cfg = cfg
	if r.o.Timeout <= 0 {
		r.o.Timeout = onceTimeout(r.o, cfg.HerokuRate)
	}
	st, err := r.o.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	r.st = st
	release, err := claimRedis(ctx, st.Store(), r.o)
	if err != nil {
		return err
	}
	defer release()
	r.sb.Checker.UseStore(st.Store())
	samples, err := r.provision(ctx)
	if err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	done := make(chan struct{})
	go func() { defer close(done); _ = st.RunWorker(wctx) }()
	defer func() { stopWorker(); <-done }()
	if !r.o.Once {
		stopWeb, err := r.serveWeb(ctx, samples)
		if err != nil {
			return err
		}
		defer stopWeb()
	}
	return r.rotate(ctx, samples)
}

// provision marks the sample ids as dev's, then provisions and registers
// them, so that a run cut short leaves nothing a later run calls foreign.
func (r *run) provision(ctx context.Context) ([]sandbox.Sample, error) {
	if err := r.st.Store().MarkDev(ctx, r.ids...); err != nil {
		return nil, err
	}
	reg, err := r.st.Registry()
	if err != nil {
		return nil, err
	}
	if r.pg != nil {
		fmt.Fprintf(r.o.Stderr, "rekey dev: fake Heroku at %s, PostgreSQL issuer on a local server\n", r.sb.HerokuURL)
		samples, err := r.pg.Provision(ctx, r.sb, reg, r.o.Instances)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(r.o.Stderr, "rekey dev: provisioned %s\n", describe(samples))
		return samples, r.markDev(ctx, samples)
	}
	fmt.Fprintf(r.o.Stderr, "rekey dev: fake Heroku at %s, demo issuer at %s\n", r.sb.HerokuURL, r.sb.IssuerURL)
	// The last sample is the held one.
	samples, err := r.sb.Provision(ctx, reg, 1, r.o.Instances-1, sandbox.DefaultMix)
	if err != nil {
		return nil, err
	}
	held, err := r.sb.ProvisionHeld(ctx, reg, r.o.Instances, r.o.Grace+r.holdDemoUse())
	if err != nil {
		return nil, err
	}
	r.held = &held
	samples = append(samples, held)
	fmt.Fprintf(r.o.Stderr, "rekey dev: provisioned %s\n", describe(samples))
	return samples, nil
}

// markDev marks samples whose ids dev did not choose (the PostgreSQL
// issuer's) as dev's, so the next run clears them.
func (r *run) markDev(ctx context.Context, samples []sandbox.Sample) error {
	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.ID
	}
	return r.st.Store().MarkDev(ctx, ids...)
}

func describe(samples []sandbox.Sample) string {
	var v1, private int
	for _, s := range samples {
		if s.APIVersion == store.APIv1 {
			v1++
		}
		if s.PrivateSpace {
			private++
		}
	}
	return fmt.Sprintf("%s (%d V3, %d V1, %d in Private Spaces)", count(len(samples), "instance"),
		len(samples)-v1, v1, private)
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
