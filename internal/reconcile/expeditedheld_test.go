package reconcile_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// A held revocation's task waits for its re-check (REKEY_HOLD_RECHECK, an
// hour here). A customer's "revoke now" then expedites the credential,
// but the dashboard cannot run the task at once (the task was running, or
// Redis failed for a moment) and leaves it to the sweep, as it says. An
// expedited credential is never held (docs/design.md, "Holds"), so the
// sweep runs its task now rather than leave the leaked credential valid
// until the re-check.
func TestSweepRunsAHeldRevocationOnceItIsExpedited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	held := w.rotated(t, "inst-h")
	recheck := held.RevokeAt.Add(time.Hour)
	w.enqueueRevoke(t, held, recheck)
	if err := w.st.SaveHold(ctx, store.Hold{InstanceID: held.InstanceID, CredentialID: held.CredentialID,
		RevokeAt: held.RevokeAt, HeldAt: held.RevokeAt, CapAt: held.RevokeAt.Add(24 * time.Hour),
		LastUsedAt: held.RevokeAt, CheckedAt: held.RevokeAt, NextCheckAt: recheck}, store.EventRevocationHeld, "in use"); err != nil {
		t.Fatal(err)
	}

	// Ten minutes into the hold the customer clicks "revoke now" (the web
	// process reads Redis's clock, the world's here).
	expediteAt := held.RevokeAt.Add(10 * time.Minute)
	sealer, _ := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	web := store.New(w.r.Client, sealer, store.WithClock(func() time.Time { return expediteAt }))
	if _, moved, err := web.Expedite(ctx, held.InstanceID, held.CredentialID, store.ExpeditedByCustomer); err != nil || !moved {
		t.Fatalf("expedite: moved %v, %v", moved, err)
	}

	w.now = expediteAt.Add(3 * time.Minute)
	if _, err := w.sweep.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := w.revokeTaskState(t, held); s != asynq.TaskStatePending {
		t.Errorf("the expedited revocation's task is %s after the sweep, want pending (run now): "+
			"the held credential the customer revoked stays valid until the hold's re-check", s)
	}
}
