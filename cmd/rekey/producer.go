package main

import (
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/registry"
)

// producer is the one way the commands request rotations: the grace floor
// (REKEY_MIN_GRACE, or REKEY_GRACE when lower) and ceiling
// (REKEY_MAX_GRACE) apply to all of them.
func (a *app) producer() *fleet.Producer {
	return fleet.NewProducer(a.store, a.queue, fleet.WithMinGrace(a.cfg.GraceFloor()),
		fleet.WithMaxGrace(a.cfg.GraceCeiling()))
}

// registry registers instances under the same grace floor and ceiling; ex
// exchanges V3 grant codes.
func (a *app) registry(ex registry.Exchanger) *registry.Registry {
	return registry.New(a.store, ex, registry.WithMinGrace(a.cfg.GraceFloor()),
		registry.WithMaxGrace(a.cfg.GraceCeiling()))
}
