package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/devstack"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

// runDevStack runs `rekey dev` with o, on REDIS_URL when it is set, and
// with the same wiring as `rekey worker` and `rekey web`.
func runDevStack(ctx context.Context, env *environ, o devstack.Options) error {
	// The settings dev sets itself are not read, so that a value a
	// worker would refuse (a compose file's http:// HEROKU_API_URL) does
	// not stop a run that ignores it.
	cfg, err := config.Load(func(k string) (string, bool) {
		if len(devIgnored([]string{k})) > 0 {
			return "", false
		}
		return env.lookup(k)
	})
	if err != nil {
		return err
	}
	o.RedisURL, o.Stdout, o.Stderr = cfg.RedisURL, env.stdout, env.stderr
	o.PostgresURL = cfg.DevPostgresURL.Reveal()
	o.Tuning = map[string]string{}
	for _, name := range devstack.TuningSettings {
		if v, ok := env.lookup(name); ok {
			o.Tuning[name] = v
		}
	}
	if ignored := devIgnored(env.names); len(ignored) > 0 {
		fmt.Fprintf(env.stderr, "rekey dev: ignores %s\n", strings.Join(ignored, ", "))
	}
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

// devReplacements say what rekey dev uses instead of a setting of the
// environment it ignores.
var devReplacements = map[string]string{
	"REKEY_GRACE":                  "use --grace",
	"REKEY_MIN_GRACE":              "--grace is the floor too",
	"REKEY_PRIVATE_SPACE_GRACE":    "use --grace",
	"REKEY_ISSUER":                 "use --issuer",
	"REKEY_ISSUER_URL":             "dev runs its own issuer",
	"REKEY_ISSUER_SECRET":          "dev runs its own issuer",
	"REKEY_ISSUER_SECRET_PREVIOUS": "dev runs its own issuer",
	"REKEY_ENCRYPTION_KEYS":        "dev makes its own",
	"REKEY_API_TOKEN":              "dev makes its own and prints it",
	"REKEY_DASHBOARD_PASSWORD":     "dev makes its own and prints it",
	"HEROKU_API_URL":               "dev runs a fake Heroku",
	"HEROKU_ID_URL":                "dev runs a fake Heroku",
	"HEROKU_SSO_SALT":              "dev makes its own",
	"HEROKU_OAUTH_CLIENT_SECRET":   "dev runs a fake Heroku",
	"HEROKU_ADDON_ID":              "dev runs a fake Heroku",
	"HEROKU_ADDON_PASSWORD":        "dev runs a fake Heroku",
	"PORT":                         "use --web-addr",
}

// devIgnored names, with what to use instead, the settings set in the
// environment (names) that rekey dev does not take on: REKEY_ ones but
// its own (REKEY_DEV_), the tuning ones it takes and the test harness's,
// and those of devReplacements. It names each once, in order. A name that
// is no setting at all (REKEY_GRAEC) is not among them: the unknown_setting
// warning says so, with the setting it is near.
func devIgnored(names []string) []string {
	var out []string
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		hint, replaced := devReplacements[name]
		switch {
		case replaced:
			out = append(out, name+" ("+hint+")")
		case strings.HasPrefix(name, "REKEY_") && !strings.HasPrefix(name, "REKEY_DEV_") &&
			!strings.HasPrefix(name, "REKEY_TEST_") && !slices.Contains(devstack.TuningSettings, name) && config.IsSetting(name):
			out = append(out, name+" (dev sets its own)")
		}
	}
	return out
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
// issuer over HTTP, or the PostgreSQL issuer. It announces its keys and
// settings as a worker does, so that the operator commands run beside it
// (its access text prints how) quote dev's grace and rate, not their own
// environment's defaults.
func (d devApp) RunWorker(ctx context.Context) error {
	iss, err := d.issuer()
	if err != nil {
		return err
	}
	defer d.announceKeys(ctx, "dev")()
	return d.runWorker(ctx, iss, d.cfg.Concurrency)
}
