package store_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// withLimits rebuilds f's store with a cap on previous credentials.
func (f *fixture) withLimits(t *testing.T, maxPrevious int) {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	f.st = store.New(f.r.Client, sealer, store.WithClock(func() time.Time { return f.now }), store.WithMaxPrevious(maxPrevious))
}

// rotate claims, mints and promotes one rotation of inst, returning the claim.
func (f *fixture) rotate(t *testing.T, r store.RotationRequest, cred string) store.Claim {
	t.Helper()
	ctx := context.Background()
	c, err := f.st.Claim(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != store.Claimed {
		return c
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:" + cred + "@db/x")}
	if err := f.st.SavePending(ctx, r.InstanceID, r.RotationID, cred, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, r.InstanceID, r.RotationID, cred, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClaimRefusesBeyondMaxPrevious(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.withLimits(t, 2)
	f.register(t, "inst-1", "cred-0")
	for i := 1; i <= 2; i++ {
		c := f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: fmt.Sprintf("rot-%d", i)}, fmt.Sprintf("cred-%d", i))
		if c.Status != store.Claimed {
			t.Fatalf("rotation %d: status %s, want claimed", i, c.Status)
		}
	}
	c := f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-3"}, "cred-3")
	if c.Status != store.Skipped || c.Refused == nil || c.Refused.Reason != store.RefusedPreviousCap || c.Refused.Count != 2 {
		t.Fatalf("third rotation: %+v (refused %+v), want skipped by the cap of 2", c, c.Refused)
	}
	if want := f.now.Add(time.Hour); !c.Refused.Until.Equal(want) {
		t.Errorf("refused until %s, want the earliest revoke time %s", c.Refused.Until, want)
	}
	in, err := f.st.Instance(context.Background(), "inst-1")
	if err != nil || in.InFlight != "" || in.CurrentCredential != "cred-2" {
		t.Fatalf("instance after the refusal: %+v, %v; want nothing in flight, cred-2 current", in, err)
	}
	events, _ := f.st.Events(context.Background(), "inst-1", 1)
	if len(events) != 1 || events[0].Type != store.EventRefused {
		t.Fatalf("last event %+v, want a refused event", events)
	}
	// A brief claim (the producers') sees the same refusal.
	out := f.st.ClaimMany(context.Background(), []store.RotationRequest{{InstanceID: "inst-1", RotationID: "rot-4"}})
	if out[0].Err != nil || out[0].Claim.Refused == nil || out[0].Claim.Refused.Reason != store.RefusedPreviousCap {
		t.Fatalf("brief claim: %+v", out[0])
	}
}

func TestCustomerLimits(t *testing.T) {
	t.Parallel()
	customer := func(rot string, limits store.CustomerLimits) store.RotationRequest {
		return store.RotationRequest{InstanceID: "inst-1", RotationID: rot, Reason: "customer request", Customer: &limits}
	}
	t.Run("one per grace", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register(t, "inst-1", "cred-0")
		lim := store.CustomerLimits{PerDay: 3, OnePerGrace: true}
		if c := f.rotate(t, customer("rot-1", lim), "cred-1"); c.Status != store.Claimed {
			t.Fatalf("first click: %s", c.Status)
		}
		c := f.rotate(t, customer("rot-2", lim), "cred-2")
		if c.Refused == nil || c.Refused.Reason != store.RefusedCustomerGrace || !c.Refused.Until.Equal(f.now.Add(time.Hour)) {
			t.Fatalf("second click in the grace: %+v %+v, want refused until the revoke time", c, c.Refused)
		}
		// An operator's request is not a customer's.
		if c := f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-3"}, "cred-3"); c.Status != store.Claimed {
			t.Fatalf("operator request: %s, want claimed", c.Status)
		}
	})
	t.Run("daily cap", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.register(t, "inst-1", "cred-0")
		lim := store.CustomerLimits{PerDay: 2}
		first := f.now
		for i := 1; i <= 2; i++ {
			if c := f.rotate(t, customer(fmt.Sprintf("rot-%d", i), lim), fmt.Sprintf("cred-%d", i)); c.Status != store.Claimed {
				t.Fatalf("click %d: %s", i, c.Status)
			}
			f.now = f.now.Add(time.Minute)
		}
		c := f.rotate(t, customer("rot-3", lim), "cred-3")
		if c.Refused == nil || c.Refused.Reason != store.RefusedCustomerDaily || c.Refused.Count != 2 ||
			!c.Refused.Until.Equal(first.Add(24*time.Hour)) {
			t.Fatalf("third click: %+v %+v, want the daily cap until a day after the first", c, c.Refused)
		}
		if n, oldest, err := f.st.CustomerRotations(context.Background(), "inst-1"); err != nil || n != 2 || !oldest.Equal(first) {
			t.Fatalf("CustomerRotations = %d, %s, %v; want 2 from %s", n, oldest, err, first)
		}
		f.now = first.Add(24*time.Hour + time.Second)
		if c := f.rotate(t, customer("rot-4", lim), "cred-4"); c.Status != store.Claimed {
			t.Fatalf("a day later: %s, want claimed", c.Status)
		}
	})
}

// TestCustomerClicksAtOnceStartOneRotation sends many customer claims at
// the same moment: exactly one starts a rotation, the others join it, and
// the day's count holds one.
func TestCustomerClicksAtOnceStartOneRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	lim := store.CustomerLimits{PerDay: 3, OnePerGrace: true}
	const clicks = 20
	var wg sync.WaitGroup
	statuses := make([]store.ClaimStatus, clicks)
	for i := range clicks {
		wg.Go(func() {
			c, err := f.st.Claim(context.Background(), store.RotationRequest{InstanceID: "inst-1",
				RotationID: fmt.Sprintf("rot-%d", i), Customer: &lim})
			if err != nil {
				t.Error(err)
			}
			statuses[i] = c.Status
		})
	}
	wg.Wait()
	claimed := 0
	for _, s := range statuses {
		if s == store.Claimed {
			claimed++
		}
	}
	if n, _, _ := f.st.CustomerRotations(context.Background(), "inst-1"); claimed != 1 || n != 1 {
		t.Fatalf("%d clicks: %d claimed, %d counted; want 1 and 1 (%v)", clicks, claimed, n, statuses)
	}
}
