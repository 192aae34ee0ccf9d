package handlers_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/tasks"
)

// TestPayloadGraceIsRaisedToTheFloor: a rotate task from elsewhere (another
// app through tasks/) that asks for a 1ms grace still keeps the old
// credential valid for the floor.
func TestPayloadGraceIsRaisedToTheFloor(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.deps.MinGrace = 30 * time.Minute
	if left := revokedIn(t, g, "rot_floor", time.Millisecond); left < 29*time.Minute {
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
	if left := revokedIn(t, g, "rot_ceiling", 2562047*time.Hour); left > 48*time.Hour || left < 47*time.Hour {
		t.Fatalf("old credential revoked in %s, want the ceiling of 48h", left)
	}
}

// A grace the worker lowers or raises is said in its log (grace_clamped,
// with what was asked and what applies): the process that told the
// operator or the customer the grace asked for may run with other bounds.
// One within the bounds is not.
func TestClampedGraceIsLogged(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.deps.MaxGrace = 3 * time.Hour
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	for rot, grace := range map[string]time.Duration{"rot_within": 2 * time.Hour, "rot_past": 5 * time.Hour} {
		task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: rot, Grace: tasks.Duration(grace)})
		if err != nil {
			t.Fatal(err)
		}
		logs.Reset()
		if err := g.mux.ProcessTask(ctx, task); err != nil {
			t.Fatalf("rotate %s: %v", rot, err)
		}
		clamped := strings.Contains(logs.String(), `"grace_clamped"`)
		if want := grace > g.deps.MaxGrace; clamped != want || want && !strings.Contains(logs.String(), `"asked":18000000`) {
			t.Errorf("%s asking %s under a 3h ceiling: grace_clamped logged %v, want %v:\n%s", rot, grace, clamped, want, logs.String())
		}
	}
}

// revokedIn runs rotation rot of inst-1 from a task payload asking for
// grace, and returns how long until the credential it superseded is due
// for revocation.
func revokedIn(t *testing.T, g *rig, rot string, grace time.Duration) time.Duration {
	t.Helper()
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: rot, Grace: tasks.Duration(grace)})
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
	return time.Until(old.RevokeAt)
}
