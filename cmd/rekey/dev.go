package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// devFlags are `rekey dev`'s flags.
type devFlags struct {
	once      bool
	instances int
	grace     time.Duration
	restart   time.Duration
	timeout   time.Duration
	// issuer is "demo" or "postgres"; pg is the local PostgreSQL of the latter.
	issuer string
	pg     *sandbox.Postgres
}

func newDevCmd(env *environ) *cobra.Command {
	var f devFlags
	c := &cobra.Command{
		Use:   "dev",
		Short: "Run rekey on an embedded Redis, a fake Heroku and a demo issuer",
		Long: `Runs everything in one process, on fakes: an embedded Redis (unless REDIS_URL is set), a faithful
fake of Heroku's APIs and a demo issuer. It provisions sample instances, rotates them all as one
batch, checks the safety invariants as the fakes see them, and prints a summary. Nothing here is
for production.`,
		Example: `  rekey dev
  rekey dev --once --instances 50
  rekey dev --grace 20s --restart-delay 2s`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if f.instances < 1 {
				return usagef("--instances must be at least 1")
			}
			if f.issuer != "demo" && f.issuer != "postgres" {
				return usagef("--issuer must be demo or postgres")
			}
			return runDev(c.Context(), env, f)
		},
	}
	fl := c.Flags()
	fl.BoolVar(&f.once, "once", false, "exit when every old credential is revoked (0 when all went well)")
	fl.IntVar(&f.instances, "instances", 20, "sample instances to provision and rotate")
	fl.DurationVar(&f.grace, "grace", 30*time.Second, "grace period before old credentials are revoked")
	fl.DurationVar(&f.restart, "restart-delay", 3*time.Second, "simulated dyno restart delay (twice as long in Private Spaces)")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "with --once, give up after this long")
	fl.StringVar(&f.issuer, "issuer", "demo", "demo (in-memory webhook issuer) or postgres (login roles of a local PostgreSQL)")
	return c
}

func runDev(ctx context.Context, env *environ, f devFlags) error {
	if 2*f.restart >= f.grace {
		return fmt.Errorf("--grace (%s) must be longer than twice --restart-delay (%s), or dynos would run revoked credentials", f.grace, f.restart)
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	redisURL, stopRedis, err := devRedis(env, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer stopRedis()
	if f.issuer == "postgres" {
		if f.pg, err = sandbox.StartPostgres(ctx, cfg.DevPostgresURL.Reveal()); err != nil {
			return err
		}
		defer f.pg.Close()
	}
	sb, err := sandbox.Start(sandbox.Params{Fake: []herokufake.Option{herokufake.WithRestartDelay(f.restart, 2*f.restart)}})
	if err != nil {
		return err
	}
	defer sb.Close()
	return devRun(ctx, env, f, sb, redisURL)
}

// devRedis returns REDIS_URL, or starts an embedded Redis when it is unset.
func devRedis(env *environ, url string) (string, func(), error) {
	if url != "" {
		fmt.Fprintln(env.stderr, "rekey dev: using REDIS_URL")
		return url, func() {}, nil
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return "", nil, fmt.Errorf("start embedded Redis: %w", err)
	}
	fmt.Fprintf(env.stderr, "rekey dev: REDIS_URL is not set, so rekey runs on an embedded Redis (miniredis at %s); nothing is kept after exit\n", m.Addr())
	return "redis://" + m.Addr() + "/0", m.Close, nil
}

func devRun(ctx context.Context, env *environ, f devFlags, sb *sandbox.Sandbox, redisURL string) error {
	vars := sb.Env(redisURL)
	vars["REKEY_GRACE"] = f.grace.String()
	vars["REKEY_MIN_GRACE"] = f.grace.String() // dev's short grace is its floor too
	vars["REKEY_PRIVATE_SPACE_GRACE"] = f.grace.String()
	vars["REKEY_LOG_LEVEL"] = "warn"
	if f.pg != nil {
		f.pg.Env(vars)
	}
	cfg, err := config.Load(sandbox.Lookup(vars))
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, newLogger(env, cfg, "dev", true))
	if err != nil {
		return err
	}
	defer a.Close()
	sb.Checker.UseStore(a.store)
	hc, err := a.heroku(nil, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "rekey dev: fake Heroku at %s, demo issuer at %s\n", sb.HerokuURL, sb.IssuerURL)
	samples, iss, err := devProvision(ctx, f, sb, a, a.registry(hc))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "rekey dev: provisioned %s\n", describe(samples))
	wctx, stopWorker := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.runWorker(wctx, iss, cfg.Concurrency) }()
	defer func() { stopWorker(); wg.Wait() }()
	return devRotate(ctx, env, f, sb, a, samples)
}

// devProvision provisions the sample instances and builds the issuer: the
// demo issuer over HTTP, or the PostgreSQL issuer on f.pg's databases.
func devProvision(ctx context.Context, f devFlags, sb *sandbox.Sandbox, a *app, reg *registry.Registry) ([]sandbox.Sample, issuer.Issuer, error) {
	if f.pg != nil {
		samples, err := f.pg.Provision(ctx, sb, reg, f.instances)
		if err != nil {
			return nil, nil, err
		}
		iss, err := a.issuer()
		return samples, iss, err
	}
	samples, err := sb.Provision(ctx, reg, 1, f.instances, sandbox.DefaultMix)
	if err != nil {
		return nil, nil, err
	}
	iss, err := issuer.NewHTTP(a.cfg.IssuerURL, a.cfg.IssuerSecret)
	return samples, iss, err
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
	return fmt.Sprintf("%d instances (%d V3, %d V1, %d in Private Spaces)", len(samples), len(samples)-v1, v1, private)
}

func devRotate(ctx context.Context, env *environ, f devFlags, sb *sandbox.Sandbox, a *app, samples []sandbox.Sample) error {
	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.ID
	}
	start := time.Now()
	res, err := a.producer().Rotate(ctx, fleet.Request{InstanceIDs: ids,
		Reason: "rekey dev", Queue: tasks.QueueDefault})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "rekey dev: batch %s: %d rotations enqueued, grace %s\n", res.BatchID, res.Enqueued, f.grace)
	b, err := devWatch(ctx, env, f, a, res.BatchID, start)
	summary := devSummary(sb, b, time.Since(start))
	fmt.Fprint(env.stdout, summary.String())
	switch {
	case err != nil:
		return err
	case summary.violations > 0:
		return fmt.Errorf("%d invariant violations", summary.violations)
	case b.Failed > 0:
		return fmt.Errorf("%d rotations failed", b.Failed)
	case !f.once:
		fmt.Fprintln(env.stderr, "rekey dev: all done; still running, Ctrl-C to stop")
		<-ctx.Done()
	}
	return nil
}

// devWatch prints progress until every rotation finished and every old
// credential was revoked (or, without --once, until Ctrl-C).
func devWatch(ctx context.Context, env *environ, f devFlags, a *app, batchID string, start time.Time) (store.Batch, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(f.timeout)
	last := ""
	for {
		b, err := a.store.Batch(ctx, batchID)
		if err != nil {
			return b, err
		}
		line := fmt.Sprintf("rotated %d/%d, failed %d, old credentials revoked %d/%d", b.Succeeded, b.Total, b.Failed, b.Revoked, b.Succeeded)
		if line != last {
			fmt.Fprintf(env.stderr, "  %5.1fs  %s\n", time.Since(start).Seconds(), line)
			last = line
		}
		if b.Done && b.Revoked >= b.Succeeded {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return b, errors.New("interrupted")
		case <-deadline:
			if f.once {
				return b, fmt.Errorf("not finished after %s", f.timeout)
			}
		case <-tick.C:
		}
	}
}

// devReport is what `rekey dev` prints at the end.
type devReport struct {
	b          store.Batch
	took       time.Duration
	calls      int
	oauth      int
	limited    int
	violations int
	details    []string
}

func devSummary(sb *sandbox.Sandbox, b store.Batch, took time.Duration) devReport {
	st := sb.Fake.Stats()
	r := devReport{b: b, took: took, limited: st.RateLimited, details: sb.Checker.Violations()}
	for k, n := range st.Calls {
		switch k.Endpoint {
		case herokufake.PatchConfig, herokufake.V1Put:
			r.calls += n
		case herokufake.OAuthToken:
			r.oauth += n
		}
	}
	r.violations = len(r.details)
	return r
}

func (r devReport) String() string {
	var s strings.Builder
	perRotation := 0.0
	if r.b.Succeeded > 0 {
		perRotation = float64(r.calls) / float64(r.b.Succeeded)
	}
	fmt.Fprintf(&s, "\nrekey dev summary (%s)\n", r.took.Round(100*time.Millisecond))
	fmt.Fprintf(&s, "  rotated                  %d of %d\n", r.b.Succeeded, r.b.Total)
	fmt.Fprintf(&s, "  failed                   %d\n", r.b.Failed)
	fmt.Fprintf(&s, "  old credentials revoked  %d\n", r.b.Revoked)
	fmt.Fprintf(&s, "  Heroku config calls      %d (%.2f per rotation)\n", r.calls, perRotation)
	fmt.Fprintf(&s, "  OAuth token calls        %d (grant exchanges at registration, refreshes)\n", r.oauth)
	fmt.Fprintf(&s, "  429s from Heroku         %d\n", r.limited)
	fmt.Fprintf(&s, "  invariant violations     %d\n", r.violations)
	for _, d := range r.details {
		fmt.Fprintf(&s, "    %s\n", d)
	}
	return s.String()
}
