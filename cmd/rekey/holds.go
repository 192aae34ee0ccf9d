package main

import (
	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/metrics"
)

// withHolds gives the handlers the hold policy (REKEY_HOLD_*) and the
// customer notices written to the app's log stream (docs/design.md,
// "Holds").
func (a *app) withHolds(d *handlers.Deps, rec *metrics.Recorder) {
	d.HoldStore = a.store
	d.Holds = holdPolicy(a.cfg)
	d.CustomerLog = logplex.NewNotifier(a.store, logplex.NewClient(0, logplex.WithLocalStandIn(logplex.LocalStandIn(a.cfg.HerokuAPIURL))), rec, a.quietLog())
}

// holdPolicy is the handlers' hold policy from the configuration.
func holdPolicy(c *config.Config) handlers.HoldPolicy {
	return handlers.HoldPolicy{Quiet: c.HoldQuiet, Recheck: c.HoldRecheck, Max: c.HoldMax,
		KeepAtCap: c.HoldAtCap == config.HoldAtCapHold}
}
