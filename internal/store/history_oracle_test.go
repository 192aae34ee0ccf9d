package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// An instance's history and the fleet stream record the same events, the
// history in the packed forms that depend on the entries around an event
// ("^", "=", "+", revoke times implied by the grace), the fleet stream
// one script's events at a time, without them. So whatever a run of
// rotations does (failures with and without a push, superseded
// unconfirmed credentials, revocations early, on time and late,
// expedited ones, events merged afterwards, ids of every form), every
// event the history reads back must be the fleet stream's, field for
// field and to the millisecond.
func TestHistoryMatchesTheFleetStream(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			historyAgainstFleet(t, seed)
		})
	}
}

func historyAgainstFleet(t *testing.T, seed uint64) {
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(seed, 42))
	s, _, now := newHistoryStore(t, WithEventCaps(200, 100000))
	step := func(d time.Duration) { *now = now.Add(d) }
	jitter := func() { step(time.Duration(rnd.IntN(3000)) * time.Millisecond) }
	credID := func(k int) string {
		switch rnd.IntN(5) {
		case 0:
			return fmt.Sprintf("cred_%016x", rnd.Uint64())
		case 1:
			return fmt.Sprintf("rekey_%020x", rnd.Uint64())[:26]
		case 2:
			return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rnd.Uint32(), rnd.IntN(1<<16), rnd.IntN(1<<12),
				rnd.IntN(1<<12), rnd.Uint64()&(1<<48-1))
		case 3:
			return fmt.Sprintf("K-%d", k)
		}
		return fmt.Sprintf("x_%05x", rnd.IntN(1<<20))
	}
	const inst = "8b1a9953-c461-4a3d-8f5e-1c7a42d0b6a1"
	if err := s.PutInstance(ctx, Registration{ID: inst, APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: credID(0)}); err != nil {
		t.Fatal(err)
	}
	var discarded []string
	for k := 1; k <= 14; k++ {
		rot := fmt.Sprintf("rot_%024x", rnd.Uint64())
		if rnd.IntN(4) == 0 {
			rot = fmt.Sprintf("rot-%d", k)
		}
		reason := ReasonScheduled
		if rnd.IntN(3) == 0 {
			reason = "customer asked"
		}
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: inst, RotationID: rot, Reason: reason}); err != nil {
			t.Fatal(err)
		}
		jitter()
		cred := credID(k)
		cfg := map[string]secret.String{"A_URL": secret.New("postgres://u:pw@db/" + cred)}
		if err := s.SavePending(ctx, inst, rot, cred, cfg); err != nil {
			t.Fatal(err)
		}
		jitter()
		switch rnd.IntN(5) {
		case 0: // failed before any push: discarded, revoked at once
			d, err := s.Fail(ctx, inst, rot, "mint_failed", "issuer said no")
			if err != nil {
				t.Fatal(err)
			}
			if d != nil {
				discarded = append(discarded, d.CredentialID)
			}
		case 1: // failed after a push: unconfirmed until the next promotion
			if err := s.MarkPushAttempt(ctx, rot, pushTargetOf(t, s, inst)); err != nil {
				t.Fatal(err)
			}
			jitter()
			if _, err := s.Fail(ctx, inst, rot, "push_unknown", "Heroku did not answer"); err != nil {
				t.Fatal(err)
			}
		default:
			grace := []time.Duration{time.Hour, 2 * time.Hour, 90 * time.Minute, 2*time.Hour + 17*time.Second + 5*time.Millisecond}[rnd.IntN(4)]
			if _, err := s.PromoteRotation(ctx, inst, rot, cred, grace, "grace "+grace.String()); err != nil {
				t.Fatal(err)
			}
		}
		jitter()
		for _, id := range discarded {
			if err := s.MarkRevoked(ctx, inst, id); err != nil {
				t.Fatal(err)
			}
		}
		discarded = nil
		prev, err := s.Previous(ctx, inst)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range prev {
			switch rnd.IntN(5) {
			case 0: // expedited
				step(time.Minute)
				if _, err := s.ExpediteRevocation(ctx, inst, p.CredentialID, "operator"); err != nil {
					t.Fatal(err)
				}
				jitter()
			case 1: // early: the revoke task's clock ran ahead
				step(time.Minute)
			case 2: // on the millisecond
				if p.RevokeAt.After(*now) {
					*now = p.RevokeAt
				}
			default: // late
				if p.RevokeAt.After(*now) {
					*now = p.RevokeAt.Add(time.Duration(rnd.IntN(20000)) * time.Millisecond)
				}
			}
			if err := s.MarkRevoked(ctx, inst, p.CredentialID); err != nil {
				t.Fatal(err)
			}
			if rnd.IntN(3) == 0 {
				jitter()
				if err := s.AddEvent(ctx, Event{Type: EventRetrying, InstanceID: inst, RotationID: rot,
					CredentialID: p.CredentialID, Detail: "noted"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		step(time.Duration(rnd.IntN(48)) * time.Hour)
	}
	history, err := s.Events(ctx, inst, 10000)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := s.FleetEvents(ctx, 100000)
	if err != nil {
		t.Fatal(err)
	}
	line := func(e Event) string {
		return fmt.Sprintf("%d %s rot=%s cred=%s detail=%q", ms(e.At), e.Type, e.RotationID, e.CredentialID, e.Detail)
	}
	var got, want []string
	for _, e := range history {
		if !slices.Contains(historyOnly, e.Type) {
			got = append(got, line(e))
		}
	}
	for _, e := range fleet {
		want = append(want, line(e))
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(want) < 50 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("history (%d events, requested and minted left out):\n%s\nfleet stream (%d):\n%s",
			len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}
}
