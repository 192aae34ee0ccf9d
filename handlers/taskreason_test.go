package handlers_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// "scheduled" is the reason rekey's scheduler gives its rotations, and a
// failure of one counts towards quarantining the instance's schedule; the
// HTTP API and the CLI refuse it for that reason (fleet.CheckReason). Another
// app's own cron, enqueuing through tasks/ with Reason "scheduled", is no
// schedule of rekey's: its failures (an issuer that refuses the instance)
// must not quarantine the instance, which would stop rekey's scheduled
// rotations of it until an operator clears it.
func TestAnotherAppsScheduledReasonDoesNotQuarantine(t *testing.T) {
	t.Parallel()
	in := failScheduled(t, 422, false)
	if in.Quarantined() {
		t.Errorf("inst-1 quarantined (%s) by another app's tasks with reason %q: rekey's schedule of it stopped",
			in.QuarantineReason, store.ReasonScheduled)
	}
}

// An issuer that refuses rekey's signature (401: a REKEY_ISSUER_SECRET
// changed on one side only) fails every instance's scheduled rotation
// alike: those failures say nothing of the instance and do not quarantine
// it, which would stop its scheduled rotations until an operator clears
// each instance of the fleet. Another refusal (422) still counts.
func TestAnIssuerRefusingRekeysSignatureQuarantinesNoInstance(t *testing.T) {
	t.Parallel()
	for status, quarantines := range map[int]bool{401: false, 422: true} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			in := failScheduled(t, status, true)
			if in.Quarantined() != quarantines {
				t.Errorf("after %d scheduled rotations refused %d: quarantined %v (%s), want %v",
					store.DefaultQuarantineAfter, status, in.Quarantined(), in.QuarantineReason, quarantines)
			}
		})
	}
}

// failScheduled runs store.DefaultQuarantineAfter rotate tasks of reason
// "scheduled" for the rig's instance, each refused by the issuer's mint
// with status, and returns the instance after them. byScheduler claims
// each rotation first, as rekey's scheduler does; without it, each is
// another app's task's own.
func failScheduled(t *testing.T, status int, byScheduler bool) store.Instance {
	t.Helper()
	g := newRig(t, issuer.WithMintFault(func(_, rotationID string) error {
		if rotationID == "provision" {
			return nil
		}
		return &issuer.Error{Op: "mint", Status: status, Code: "refused_by_the_test"}
	}))
	ctx := context.Background()
	for i := range store.DefaultQuarantineAfter {
		req := store.RotationRequest{InstanceID: "inst-1", RotationID: fmt.Sprintf("rot_sched_%d", i), Reason: store.ReasonScheduled}
		if byScheduler {
			if _, err := g.st.ClaimBrief(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: req.RotationID,
			Reason: store.ReasonScheduled})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.run(task); !isPermanent(err) {
			t.Fatalf("rotation %d: err = %v, want the issuer's refusal to end it", i, err)
		}
	}
	in, err := g.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	return in
}
