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
	before, _ := g.st.Instance(ctx, "inst-1")
	if _, err := g.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_op",
		BatchID: "bat_op", Queue: tasks.QueueDefault, Grace: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_op"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.run(task); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	old, err := g.st.Credential(ctx, "inst-1", before.CurrentCredential)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(old.RevokeAt); left < 23*time.Hour {
		t.Fatalf("rotation requested with a 24h grace: old credential %s (%s) revoked in %s", old.ID, old.State, left.Round(time.Minute))
	}
}
