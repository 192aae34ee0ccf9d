package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

// HoldDemoUser is who keeps using the held demo instance's old credential.
const HoldDemoUser = "one-off dyno run.4127"

// ProvisionHeld provisions instance number i, whose provisioning credential
// a simulated one-off dyno keeps using for useFor from now: once a rotation
// replaces it, its revocation is held past the grace until the dyno exits
// (docs/design.md, "Holds"). `rekey dev` shows it with HoldStory.
func (s *Sandbox) ProvisionHeld(ctx context.Context, reg *registry.Registry, i int, useFor time.Duration) (Sample, error) {
	sm, err := s.provision(ctx, reg, i, Mix{})
	if err != nil {
		return sm, err
	}
	s.Demo.UseUntil(sm.Provisioned, time.Now().Add(useFor), HoldDemoUser)
	return sm, nil
}

// HoldStory is what happened to a held instance, for a summary: its hold
// events in order, then the lines its app's log stream received.
func (s *Sandbox) HoldStory(ctx context.Context, st *store.Store, sm Sample) ([]string, error) {
	events, err := st.Events(ctx, sm.ID, 200)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(events) - 1; i >= 0; i-- {
		switch e := events[i]; e.Type {
		case store.EventRevocationHeld, store.EventHoldRechecked, store.EventHoldReleased, store.EventHoldCapped, store.EventRevoked:
			out = append(out, fmt.Sprintf("%s %s %s", e.At.UTC().Format("15:04:05Z"), e.Type, e.Detail))
		}
	}
	for _, l := range s.Fake.LogLines(s.Fake.AppOf(sm.ID)) {
		out = append(out, "app log: "+l)
	}
	return out, nil
}
