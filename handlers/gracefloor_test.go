package handlers_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestPayloadGraceBelowTheFloorKeepsTheInstancesGrace: a rotate task from
// elsewhere (an older producer, a payload written by hand) that asks for
// a grace below the floor is almost always a unit mistake: Grace: 86400,
// meant as a day, is 86.4µs, which encodes as "86.4µs". The worker does
// not raise it to the floor, which would revoke the old credential ten
// minutes after the push while a Private Space's dynos may still be
// restarting: it gives the rotation the instance's grace (REKEY_GRACE
// here, an hour), says so in its log, and keeps no such grace in the
// rotation's record, which a rebuilt task and a joining request read.
func TestPayloadGraceBelowTheFloorKeepsTheInstancesGrace(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		rot   string
		grace string // the payload's grace, as JSON
		asked string // the log's "asked", in milliseconds
	}{
		"a day written as Grace: 86400":     {rot: "rot_ns", grace: `"86.4µs"`, asked: `"asked":0.0864`},
		"a minute as a number of seconds":   {rot: "rot_secs", grace: `60`, asked: `"asked":60000`},
		"a second short of the 10m default": {rot: "rot_short", grace: `"9m59s"`, asked: `"asked":599000`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			g.deps.MinGrace = tasks.MinGrace
			var logs bytes.Buffer
			ctx := zerolog.New(&logs).WithContext(context.Background())
			rot := tt.rot
			raw := `{"instance_id":"inst-1","rotation_id":"` + rot + `","grace":` + tt.grace + `}`
			left := revokedAfter(t, g, ctx, asynq.NewTask(tasks.TypeRotate, []byte(raw)))
			if left < grace-time.Minute || left > grace {
				t.Errorf("old credential revoked in %s, want the instance's grace of %s (not the floor of %s)", left, grace, tasks.MinGrace)
			}
			if !strings.Contains(logs.String(), `"grace_below_floor"`) || !strings.Contains(logs.String(), tt.asked) {
				t.Errorf("log does not say grace_below_floor with %s:\n%s", tt.asked, logs.String())
			}
			if r, err := g.st.Rotation(context.Background(), rot); err != nil || r.Grace != 0 {
				t.Errorf("rotation record's grace = %s, %v; want none kept", r.Grace, err)
			}
		})
	}
}

// TestRecordedGraceBelowTheFloorKeepsTheInstancesGrace: a rotation whose
// record an earlier worker wrote with a payload's grace below the floor
// gets the instance's grace, not the floor: run by its task rebuilt from
// that record (the reconcile sweep, the pacing feeder), which carries the
// record's grace, or by another app's task naming it without a grace.
func TestRecordedGraceBelowTheFloorKeepsTheInstancesGrace(t *testing.T) {
	t.Parallel()
	for name, payload := range map[string]tasks.Duration{
		"rebuilt from the record":      tasks.Duration(90 * time.Second),
		"another app's task, no grace": 0,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			g.deps.MinGrace = tasks.MinGrace
			ctx := context.Background()
			if _, err := g.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot_recorded",
				Queue: tasks.QueueDefault, Grace: 90 * time.Second}); err != nil {
				t.Fatal(err)
			}
			task, err := tasks.NewRotateTaskWithFloor(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot_recorded",
				Grace: payload}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if left := revokedAfter(t, g, ctx, task); left < grace-time.Minute || left > grace {
				t.Fatalf("old credential revoked in %s, want the instance's grace of %s", left, grace)
			}
		})
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
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: rot, Grace: tasks.Duration(grace)})
	if err != nil {
		t.Fatal(err)
	}
	return revokedAfter(t, g, context.Background(), task)
}

// revokedAfter runs task, a rotation of inst-1, with ctx, and returns how
// long until the credential it superseded is due for revocation.
func revokedAfter(t *testing.T, g *rig, ctx context.Context, task *asynq.Task) time.Duration {
	t.Helper()
	before, _ := g.st.Instance(ctx, "inst-1")
	if err := g.mux.ProcessTask(ctx, task); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	old, err := g.st.Credential(ctx, "inst-1", before.CurrentCredential)
	if err != nil {
		t.Fatal(err)
	}
	return time.Until(old.RevokeAt)
}
