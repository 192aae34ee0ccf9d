package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/devstack"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

// runDevStack runs `rekey dev` with o, on REDIS_URL when it is set, and
// with the same wiring as `rekey worker` and `rekey web`.
func runDevStack(ctx context.Context, env *environ, o devstack.Options) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	o.RedisURL, o.Stdout, o.Stderr = cfg.RedisURL, env.stdout, env.stderr
	o.PostgresURL = cfg.DevPostgresURL.Reveal()
	o.Open = func(ctx context.Context, cfg *config.Config) (devstack.Stack, error) {
		a, err := openApp(ctx, cfg, newLogger(env, cfg, "dev", true))
		if down, ok := errors.AsType[*redisDownError](err); ok {
			down.hint = "start it, or unset REDIS_URL and rekey dev runs on an embedded Redis"
		}
		if err != nil {
			return nil, err
		}
		return devApp{a}, nil
	}
	err = devstack.Run(ctx, o)
	var live *devstack.LiveWorkersError
	if errors.As(err, &live) {
		// Like a missing --confirm: the remedy is a flag.
		return &usageError{msg: live.Error()}
	}
	return err
}

// devApp is the app as internal/devstack runs it.
type devApp struct{ *app }

var _ devstack.Stack = devApp{}

func (d devApp) Store() *store.Store               { return d.store }
func (d devApp) Producer() *fleet.Producer         { return d.producer() }
func (d devApp) WebHandler() (http.Handler, error) { return d.webHandler() }

func (d devApp) Registry() (*registry.Registry, error) {
	hc, err := d.heroku(nil, nil)
	if err != nil {
		return nil, err
	}
	return d.registry(hc), nil
}

// RunWorker runs the worker against the run's issuer: the sandbox's demo
// issuer over HTTP, or the PostgreSQL issuer.
func (d devApp) RunWorker(ctx context.Context) error {
	iss, err := d.issuer()
	if err != nil {
		return err
	}
	return d.runWorker(ctx, iss, d.cfg.Concurrency)
}
