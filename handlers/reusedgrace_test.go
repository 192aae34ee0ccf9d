package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestATaskNamingARotationKeepsItsGrace: an operator's rotation asks a 24h
// grace (apps that keep the old credential long); the producer claims it
// with that grace (grace_ms on the rotation). Another app enqueues, through
// tasks/, a rotate task that names the same rotation id (the API answered
// it) without a grace. Its run resumes the rotation and promotes it with
// the grace the rotation was claimed with, not its own payload's shorter
// one: a grace is never shortened (I2).
func TestATaskNamingARotationKeepsItsGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_op",
		BatchID: "bat_op", Queue: tasks.QueueDefault, Grace: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	// The other app's task names the rotation and no grace.
	if left := revokedIn(t, g, "rot_op", 0); left < 23*time.Hour {
		t.Fatalf("rotation requested with a 24h grace: old credential revoked in %s", left.Round(time.Minute))
	}
}
