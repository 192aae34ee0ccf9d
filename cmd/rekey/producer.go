package main

import (
	"context"
	"fmt"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/tasks"
)

// producer is the one way the commands request rotations: the grace floor
// (REKEY_MIN_GRACE, or REKEY_GRACE when lower) and ceiling
// (REKEY_MAX_GRACE) apply to all of them.
func (a *app) producer() *fleet.Producer {
	return fleet.NewProducer(a.store, a.queue, fleet.WithMinGrace(a.cfg.GraceFloor()),
		fleet.WithMaxGrace(a.cfg.GraceCeiling()))
}

// registry registers instances under the same grace floor and ceiling; ex
// exchanges V3 grant codes. An instance registered with another
// instance's live credential is rotated at once (rotateShared). A
// log_input_url may be http only to HEROKU_API_URL's own address, when that
// is a local stand-in.
func (a *app) registry(ex registry.Exchanger) *registry.Registry {
	return registry.New(a.store, ex, registry.WithMinGrace(a.cfg.GraceFloor()),
		registry.WithMaxGrace(a.cfg.GraceCeiling()), registry.WithSharedCurrentRotation(a.rotateShared),
		registry.WithLocalStandIn(logplex.LocalStandIn(a.cfg.HerokuAPIURL)))
}

// sharedReason is the audit reason of the rotation rotateShared requests.
const sharedReason = "registered with another instance's live credential"

// rotateShared requests, on the interactive queue, the rotation of an
// instance whose registration named another instance's live credential as
// its current one, and logs what became of the request; it names no
// credential's value.
func (a *app) rotateShared(ctx context.Context, instanceID string) error {
	log := a.log.With().Str("instance_id", instanceID).Logger()
	res, err := a.producer().Rotate(ctx, fleet.Request{InstanceIDs: []string{instanceID}, Reason: sharedReason,
		Queue: tasks.QueueInteractive})
	if err == nil && res.Gone > 0 {
		err = fmt.Errorf("instance %s was deprovisioned meanwhile", instanceID)
	}
	if err != nil {
		log.Error().Err(err).Msg("shared_current_rotation_not_requested")
		return err
	}
	log.Warn().Str("batch_id", res.BatchID).Msg("shared_current_rotation_requested")
	return nil
}
