package store_test

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// A rotation record a rekey version before this one wrote for another
// app's task keeps the batch id the task carried, one no batch can have
// (line breaks, a key separator). Read back, the record names no batch:
// the task rebuilt from it (the sweep's, the pacing feeder's) would be
// refused by tasks.NewRotateTaskWithFloor, and the rotation left without one.
func TestARecordedBatchIDNoBatchCanHaveIsReadAsNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1",
		BatchID: "corr 42\r\n:failures"}); err != nil {
		t.Fatal(err)
	}
	rot, err := f.st.Rotation(ctx, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if rot.BatchID != "" {
		t.Errorf("the record's batch id reads %q, want none", rot.BatchID)
	}
	if _, err := tasks.NewRotateTaskWithFloor(tasks.RotatePayload{InstanceID: rot.InstanceID, RotationID: rot.ID,
		BatchID: rot.BatchID}, 0); err != nil {
		t.Errorf("the task rebuilt from the record: %v", err)
	}
}
