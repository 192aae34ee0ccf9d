package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/tasks"
)

// TestPayloadGraceIsRaisedToTheFloor: a rotate task from elsewhere (another
// app through tasks/) that asks for a 1ms grace still keeps the old
// credential valid for the floor.
func TestPayloadGraceIsRaisedToTheFloor(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.deps.MinGrace = 30 * time.Minute
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_floor",
		Grace: tasks.Duration(time.Millisecond)})
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
	if left := time.Until(old.RevokeAt); left < 29*time.Minute {
		t.Fatalf("old credential revoked in %s, want at least the floor of 30m", left)
	}
}

// TestPayloadGraceIsLoweredToTheCeiling: a rotate task from elsewhere that
// asks for a grace of centuries (the longest a time.Duration holds) still
// has its old credential revoked at the ceiling.
func TestPayloadGraceIsLoweredToTheCeiling(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.deps.MaxGrace = 48 * time.Hour
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_ceiling",
		Grace: tasks.Duration(2562047 * time.Hour)})
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
	if left := time.Until(old.RevokeAt); left > 48*time.Hour || left < 47*time.Hour {
		t.Fatalf("old credential revoked in %s, want the ceiling of 48h", left)
	}
}
