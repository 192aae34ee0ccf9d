package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/store"
)

// A hold lives only while its credential waits for revocation: SaveHold
// refuses a revoked credential (another run of its revoke task revoked it)
// and writes nothing, and MarkRevoked deletes a hold saved before it, so
// that no revoked credential is listed as held.
func TestAHoldEndsWithItsCredentialsRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hold := func(f *fixture, cred string) store.Hold {
		c, _ := f.st.Credential(ctx, "inst-1", cred)
		return store.Hold{InstanceID: "inst-1", CredentialID: cred, RevokeAt: c.RevokeAt, HeldAt: f.now,
			CapAt: c.RevokeAt.Add(24 * time.Hour), LastUsedAt: f.now, CheckedAt: f.now}
	}
	held := func(t *testing.T, f *fixture, cred string) {
		t.Helper()
		_, ok, err := f.st.HoldOf(ctx, "inst-1", cred)
		sum, _ := f.st.HoldStats(ctx)
		if err != nil || ok || sum.Held != 0 {
			t.Errorf("hold of revoked %s: %v, %v; holds listed: %d; want none", cred, ok, err, sum.Held)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{name: "saved after the revocation", run: func(t *testing.T, f *fixture) {
			if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
				t.Fatal(err)
			}
			if err := f.st.SaveHold(ctx, hold(f, "cred-0"), store.EventRevocationHeld, "in use"); !errors.Is(err, store.ErrConflict) {
				t.Errorf("SaveHold of a revoked credential = %v, want ErrConflict", err)
			}
		}},
		{name: "saved before the revocation", run: func(t *testing.T, f *fixture) {
			if err := f.st.SaveHold(ctx, hold(f, "cred-0"), store.EventRevocationHeld, "in use"); err != nil {
				t.Fatal(err)
			}
			if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "released before the revocation", run: func(t *testing.T, f *fixture) {
			if err := f.st.SaveHold(ctx, hold(f, "cred-0"), store.EventRevocationHeld, "in use"); err != nil {
				t.Fatal(err)
			}
			if ok, err := f.st.ReleaseHold(ctx, "inst-1", "cred-0", "quiet", f.now); !ok || err != nil {
				t.Fatalf("ReleaseHold = %v, %v", ok, err)
			}
			if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.register(t, "inst-1", "cred-0")
			f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}, "cred-1")
			tc.run(t, f)
			held(t, f, "cred-0")
			if c, _ := f.st.Credential(ctx, "inst-1", "cred-0"); !c.Revoked() {
				t.Errorf("cred-0 = %+v, want revoked", c)
			}
		})
	}
}

// An operator's release request that comes as the hold ends (its
// revocation, or a release, deleting it) finds no hold and leaves none: a
// write after a separate check would leave a hold of one field, listed
// nowhere and never expiring, that HoldOf reports as held.
func TestReleaseRequestedAsTheHoldEndsLeavesNoHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	f.rotate(t, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}, "cred-1")
	c, _ := f.st.Credential(ctx, "inst-1", "cred-0")
	h := store.Hold{InstanceID: "inst-1", CredentialID: "cred-0", RevokeAt: c.RevokeAt, HeldAt: f.now,
		CapAt: c.RevokeAt.Add(24 * time.Hour), LastUsedAt: f.now, CheckedAt: f.now}
	if err := f.st.SaveHold(ctx, h, store.EventRevocationHeld, "in use"); err != nil {
		t.Fatal(err)
	}
	// The hold ends just before the request's first write reaches Redis.
	f.r.Client.AddHook(&beforeWrite{before: func() {
		if ok, err := f.st.ReleaseHold(context.Background(), "inst-1", "cred-0", "quiet", f.now); !ok || err != nil {
			t.Errorf("ReleaseHold = %v, %v", ok, err)
		}
	}})
	if err := f.st.RequestHoldRelease(ctx, "inst-1", "cred-0", "an operator"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RequestHoldRelease as the hold ends = %v, want ErrNotFound", err)
	}
	if _, ok, err := f.st.HoldOf(ctx, "inst-1", "cred-0"); ok || err != nil {
		t.Errorf("HoldOf after the hold ended = %v, %v; want no hold", ok, err)
	}
}

// beforeWrite runs before once, ahead of the first command that is not a
// read of whether a key exists.
type beforeWrite struct {
	before func()
	done   bool
}

func (h *beforeWrite) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *beforeWrite) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *beforeWrite) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "exists" && !h.done {
			h.done = true
			h.before()
		}
		return next(ctx, cmd)
	}
}
