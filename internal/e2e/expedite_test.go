package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// TestExpediteRevokesPreviousNow: instances rotated by the workers with
// rekey's default grace of two hours, whose revoke tasks asynq holds for
// those two hours. After an incident an operator runs `rekey revocations
// expedite` (the binary, off a terminal): the issuer sees the DELETE of
// each named old credential within seconds, an instance not named keeps
// its grace, and a current credential named is refused with nothing
// changed. No current credential is ever revoked (I1).
func TestExpediteRevokesPreviousNow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(3, sandbox.Mix{})
	w.startWorker(workerParams{sweep: true})
	ids := []string{samples[0].ID, samples[1].ID, samples[2].ID}
	res, err := fleet.NewProducer(w.store, w.queue).Rotate(ctx,
		fleet.Request{InstanceIDs: ids, Reason: "e2e", Queue: tasks.QueueDefault, Grace: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if b := w.waitBatch(res.BatchID, time.Minute); b.Succeeded != 3 {
		t.Fatalf("batch: %+v", b)
	}
	waitFor(t, 10*time.Second, "every dyno on its new release", func() (bool, string) { return w.sb.Fake.Settled(), "" })
	for _, s := range samples {
		info, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(s.ID, s.Provisioned))
		if err != nil || info.State != asynq.TaskStateScheduled || time.Until(info.NextProcessAt) < time.Hour {
			t.Fatalf("%s: revoke task %+v (%v), want one scheduled two hours ahead", s.ID, info, err)
		}
	}
	env := w.processEnv()

	// A current credential is refused, and so is the whole command.
	current := w.current(samples[0].ID)
	p := startRekey(t, env, "revocations", "expedite", samples[1].ID, samples[0].ID+"/"+current, "--confirm")
	if code := p.exit(time.Minute); code != 1 || !strings.Contains(p.stderr.String(), "the credential is current") {
		t.Fatalf("expedite naming a current credential: exit %d, want 1 naming its state:\n%s", code, p.stderr)
	}
	if old, _ := w.store.Credential(ctx, samples[1].ID, samples[1].Provisioned); !old.ExpeditedAt.IsZero() {
		t.Fatal("a refused expedite changed a credential it named too")
	}

	// The first by its instance, the second by its credential; the third waits.
	p = startRekey(t, env, "revocations", "expedite", samples[0].ID, samples[1].ID+"/"+samples[1].Provisioned, "--confirm")
	if code := p.exit(time.Minute); code != 0 || !strings.Contains(p.stderr.String(), "2 previous credentials expedited") {
		t.Fatalf("expedite: exit %d:\n%s", code, p.stderr)
	}
	asked := time.Now()
	waitFor(t, 10*time.Second, "the issuer's DELETEs", func() (bool, string) {
		_, first := w.sb.Demo.RevokedAt(samples[0].Provisioned)
		_, second := w.sb.Demo.RevokedAt(samples[1].Provisioned)
		return first && second, fmt.Sprintf("revoked: %v, %v", first, second)
	})
	t.Logf("revoked %s after the command", time.Since(asked).Round(10*time.Millisecond))
	if !w.sb.Demo.Valid(samples[2].Provisioned) {
		t.Errorf("%s: its old credential was revoked, though not named", samples[2].ID)
	}
	for _, s := range samples {
		if cur := w.current(s.ID); !w.sb.Demo.Valid(cur) {
			t.Errorf("%s: its current credential %s was revoked (I1)", s.ID, cur)
		}
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}

// current is instance id's current credential.
func (w *world) current(id string) string {
	w.t.Helper()
	in, err := w.store.Instance(context.Background(), id)
	if err != nil || in.CurrentCredential == "" {
		w.t.Fatalf("instance %s: %+v, %v", id, in, err)
	}
	return in.CurrentCredential
}
