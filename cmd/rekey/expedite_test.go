package main

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// rotated registers id with credential cred-0 and rotates it through the
// store to cred-1 with a grace of two hours; with task, its revoke task is
// scheduled for the end of the grace, as the worker's promotion does.
func (c *cli) rotated(t *testing.T, id string, task bool) {
	t.Helper()
	ctx := context.Background()
	c.pendingRotation(t, id)
	prev, err := c.st.Promote(ctx, id, "rot-"+id, "cred-1", 2*time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	if !task {
		return
	}
	rt, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: id, CredentialID: prev.CredentialID}, prev.RevokeAt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(c.r.Client).Enqueue(rt); err != nil {
		t.Fatal(err)
	}
}

// pendingRotation registers id with credential cred-0 and leaves a
// rotation in flight with cred-1 pending.
func (c *cli) pendingRotation(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	if err := c.st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: "rot-" + id}); err != nil {
		t.Fatal(err)
	}
	if err := c.st.SavePending(ctx, id, "rot-"+id, "cred-1", map[string]secret.String{"MYADDON_URL": secret.New("postgres://" + id)}); err != nil {
		t.Fatal(err)
	}
}

func TestRevocationsExpedite(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	c.rotated(t, "inst-a", true)
	c.rotated(t, "inst-b", false)
	c.pendingRotation(t, "inst-p")
	c.register(t, 1) // inst-00000: a current credential only
	before := c.snapshot(t)

	// Every name that stands for no previous credential is refused, by its
	// state, and nothing is expedited.
	err := c.run(t, "revocations", "expedite", "inst-a", "inst-a/cred-1", "inst-p/cred-1", "inst-p/cred-0",
		"inst-00000", "inst-x", "inst-a/cred-9", "--confirm")
	for _, want := range []string{"inst-a/cred-1: the credential is current", "inst-p/cred-1: the credential is pending",
		"inst-p/cred-0: the credential is current", "inst-00000: instance inst-00000 has no previous credential waiting",
		"inst-x: instance inst-x is not registered", "inst-a/cred-9: instance inst-a has no credential cred-9", "nothing was expedited"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refused expedite: %v; want %q", err, want)
		}
	}
	if isUsage(err) || c.stdout.String() != "" {
		t.Errorf("refused expedite: a usage error (%v), or output: %q", isUsage(err), c.stdout)
	}
	// Off a terminal it needs --confirm; on one, a no does nothing.
	if err := c.run(t, "revocations", "expedite", "inst-a"); !isUsage(err) || !strings.Contains(err.Error(), "--confirm") {
		t.Errorf("expedite off a terminal without --confirm = %v; want a usage error naming --confirm", err)
	}
	c.terminal, c.stdin = true, strings.NewReader("n\n")
	if err := c.run(t, "revocations", "expedite", "inst-a"); err == nil || !strings.Contains(c.stderr.String(), "inst-a/cred-0") {
		t.Errorf("expedite answered no = %v; want an error, after a question naming inst-a/cred-0:\n%s", err, c.stderr)
	}
	c.terminal = false
	if !maps.Equal(before, c.snapshot(t)) {
		t.Fatal("a refused expedite changed Redis")
	}

	// inst-a by its instance and by name (once), inst-b by name.
	if err := c.run(t, "revocations", "expedite", "inst-a", "inst-b/cred-0", "inst-a/cred-0", "--confirm", "--json"); err != nil {
		t.Fatalf("expedite: %v\n%s", err, c.stderr)
	}
	var got []expedited
	if err := json.Unmarshal([]byte(c.stdout.String()), &got); err != nil || len(got) != 2 {
		t.Fatalf("expedite --json = %s (%v); want two entries", c.stdout, err)
	}
	// inst-a's task waited for the end of the grace and runs now; inst-b had none.
	if got[0].ID != "inst-a/cred-0" || got[0].Task != "run" || got[1].ID != "inst-b/cred-0" || got[1].Task != "enqueued" {
		t.Errorf("expedite --json = %+v; want inst-a's task run and inst-b's enqueued", got)
	}
	for _, e := range got {
		cred, err := c.st.Credential(ctx, e.InstanceID, e.CredentialID)
		if err != nil || cred.ExpeditedAt.IsZero() || cred.RevokeAt.After(time.Now()) || time.Until(e.WasRevokeAt) < time.Hour {
			t.Errorf("%s after expedite: %+v (%v); was due at %s", e.ID, cred, err, e.WasRevokeAt)
		}
	}
	// A new revoke task is scheduled for its revoke time in whole seconds.
	insp := asynq.NewInspectorFromRedisClient(c.r.Client)
	for _, id := range []string{"inst-a", "inst-b"} {
		info, err := insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(id, "cred-0"))
		if err != nil || info.State != asynq.TaskStatePending && time.Until(info.NextProcessAt) > 2*time.Second {
			t.Errorf("%s/cred-0's revoke task: %+v (%v); want it to run now", id, info, err)
		}
	}

	// Revoked, and a deprovisioned instance with nothing waiting.
	if err := c.st.MarkRevoked(ctx, "inst-b", "cred-0"); err != nil {
		t.Fatal(err)
	}
	if err := c.st.Deprovision(ctx, "inst-00000"); err != nil {
		t.Fatal(err)
	}
	err = c.run(t, "revocations", "expedite", "inst-b/cred-0", "inst-00000", "--confirm")
	for _, want := range []string{"inst-b/cred-0: already revoked", "instance inst-00000 (deprovisioned) has no previous credential"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("expedite revoked and deprovisioned: %v; want %q", err, want)
		}
	}
	for _, args := range [][]string{{}, {"inst-a/"}, {"a/b/c"}} {
		if err := c.run(t, "revocations", append([]string{"expedite"}, args...)...); !isUsage(err) {
			t.Errorf("expedite %v = %v, want a usage error", args, err)
		}
	}
}

// TestCtrlCAtExpediteQuestion: the question names the credentials, goes to
// stderr, and Ctrl-C at it expedites nothing and exits 130.
func TestCtrlCAtExpediteQuestion(t *testing.T) {
	c := newCLI(t)
	c.rotated(t, "inst-a", true)
	before := c.snapshot(t)
	err, stdout, stderr := interruptAtQuestion(t, c.vars(), "revocations", "expedite", "inst-a")
	wantInterrupted(t, err, stdout, "interrupted: nothing was expedited")
	if !strings.Contains(stderr, "inst-a/cred-0") {
		t.Errorf("the question does not name the credential:\n%s", stderr)
	}
	if !maps.Equal(before, c.snapshot(t)) {
		t.Error("an interrupted expedite changed Redis")
	}
}

// A revocation the issuer refused for good (the dead-letter set) is not
// expedited, by its credential or by its instance: it waits for the
// issuer's fix and `revocations retry`, which takes it out of that set;
// expedited, it would run again while still listed there. Nothing changes.
func TestExpediteRefusesADeadRevocation(t *testing.T) {
	c := newCLI(t)
	c.deadRevocation(t, "inst-a")
	before := c.snapshot(t)
	for _, name := range []string{"inst-a/cred-0", "inst-a"} {
		err := c.run(t, "revocations", "expedite", name, "--confirm")
		if err == nil || !strings.Contains(err.Error(), "set aside (rekey revocations dead)") ||
			!strings.Contains(err.Error(), "'rekey revocations retry inst-a/cred-0'") {
			t.Errorf("expedite %s of a dead revocation: %v, want a refusal naming revocations retry", name, err)
		}
	}
	if !maps.Equal(before, c.snapshot(t)) {
		t.Error("a refused expedite changed Redis")
	}
	if n, err := c.st.CountDeadRevocations(context.Background()); err != nil || n != 1 {
		t.Errorf("%d dead revocations (%v), want the one still there", n, err)
	}

	// With another previous credential waiting, the instance's expedite
	// runs that one and says which it left out, and why.
	ctx := context.Background()
	if _, err := c.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-a", RotationID: "rot-2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.st.SavePending(ctx, "inst-a", "rot-2", "cred-2", map[string]secret.String{"MYADDON_URL": secret.New("postgres://2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.Promote(ctx, "inst-a", "rot-2", "cred-2", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "revocations", "expedite", "inst-a", "--confirm"); err != nil {
		t.Fatalf("expedite of an instance with one dead and one waiting: %v", err)
	}
	if !strings.Contains(c.stdout.String(), "inst-a/cred-1") || strings.Contains(c.stdout.String(), "cred-0") {
		t.Errorf("expedited:\n%s\nwant inst-a/cred-1 alone", c.stdout)
	}
	if want := "not expedited: inst-a/cred-0: the issuer refused its revocation"; !strings.Contains(c.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, c.stderr)
	}
}

// In an incident the leaked credential is often the current one: an
// operator rotates the instance, then expedites "the old credential"
// before that rotation is done. The credentials already waiting are
// expedited, and stderr says that the current one, which the rotation in
// flight makes previous only once it is done, is not, and what to run
// then; with none waiting, the refusal says the same.
func TestExpediteDuringARotationNamesTheCurrentCredentialItLeaves(t *testing.T) {
	for _, waiting := range []string{"an older one", "none", "a dead one only"} {
		t.Run(waiting, func(t *testing.T) {
			c := newCLI(t)
			ctx := context.Background()
			older := waiting == "an older one"
			id := "inst-a"
			switch waiting {
			case "an older one":
				c.rotated(t, id, true) // cred-0 previous, cred-1 current
			case "a dead one only":
				c.deadRevocation(t, id) // cred-0 previous and set aside as dead
			default:
				c.register(t, 1)
				id = instanceID(0)
			}
			if err := c.run(t, "rotate", id, "--reason", "INC-1 leaked"); err != nil {
				t.Fatalf("rotate: %v\n%s", err, c.stderr)
			}
			in, err := c.st.Instance(ctx, id)
			if err != nil || in.InFlight == "" {
				t.Fatalf("%s after rotate: %+v (%v); want a rotation in flight", id, in, err)
			}
			c.stdout.Reset()
			c.stderr.Reset()
			err = c.run(t, "revocations", "expedite", id, "--confirm")
			if older != (err == nil) {
				t.Errorf("expedite = %v, want it to succeed only with an older credential waiting", err)
			}
			said := c.stderr.String()
			if err != nil {
				said += err.Error()
			}
			want := "rotation " + in.InFlight + " of " + id + " is in flight: its current credential, " + in.CurrentCredential
			if !strings.Contains(said, want) || !strings.Contains(said, "rekey revocations expedite "+id+"' again") {
				t.Errorf("expedite says:\n%s\nwant it to name the rotation in flight and the current credential (%q)", said, want)
			}
		})
	}
}

// TestExpediteWarnsOfAPausedRevokeQueue: the revoke queue paused by hand
// (asynq's CLI or Inspector; nothing of rekey's pauses it) and forgotten
// revokes nothing, so an expedite after an incident that said "its revoke
// task runs now" and nothing more left the leaked credential valid while
// the operator believed it revoked. The expedite still moves the revoke
// time, and says on stderr that the revocations wait for the queue and how
// to resume it; a running queue gets no warning. A hold's release, whose
// task "runs now" too, says so as well.
func TestExpediteWarnsOfAPausedRevokeQueue(t *testing.T) {
	c := newCLI(t)
	c.rotated(t, "inst-a", true)
	c.rotated(t, "inst-b", true)
	if err := c.run(t, "revocations", "expedite", "inst-a", "--confirm"); err != nil || strings.Contains(c.stderr.String(), "warning") {
		t.Fatalf("expedite on a running revoke queue = %v; stderr:\n%s", err, c.stderr)
	}
	if err := asynq.NewInspectorFromRedisClient(c.r.Client).PauseQueue(tasks.QueueRevoke); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "revocations", "expedite", "inst-b", "--confirm"); err != nil {
		t.Fatalf("expedite on a paused revoke queue: %v\n%s", err, c.stderr)
	}
	if cred, err := c.st.Credential(context.Background(), "inst-b", "cred-0"); err != nil || cred.ExpeditedAt.IsZero() {
		t.Errorf("inst-b/cred-0 after expedite: %+v (%v); want expedited", cred, err)
	}
	for _, want := range []string{"warning: the revoke queue is paused, so this revocation waits until it is resumed",
		"asynq queue unpause revoke"} {
		if !strings.Contains(c.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, c.stderr)
		}
	}

	held := c.heldCredential(t)
	inst, cred, _ := strings.Cut(held, "/")
	rt, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: inst, CredentialID: cred}, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(c.r.Client).Enqueue(rt); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "holds", "release", held, "--confirm"); err != nil {
		t.Fatalf("holds release on a paused revoke queue: %v\n%s", err, c.stderr)
	}
	if !strings.Contains(c.stdout.String(), "released; its revoke task runs now") ||
		!strings.Contains(c.stderr.String(), "warning: the revoke queue is paused, so this revocation waits") {
		t.Errorf("holds release on a paused revoke queue: stdout %q, stderr:\n%s", c.stdout, c.stderr)
	}
}

// A time typed after the instance (expedite inst-a 2h, meaning a shorter
// grace, or 0, or now) is refused with the whole command, as an unknown
// instance is, and the refusal says that expedite takes no time: it
// revokes now. Nothing is expedited.
func TestExpediteGivenATimeSaysItTakesNone(t *testing.T) {
	c := newCLI(t)
	c.rotated(t, "inst-a", true)
	before := c.snapshot(t)
	for _, when := range []string{"2h", "30m", "0", "now", "2d"} {
		err := c.run(t, "revocations", "expedite", "inst-a", when, "--confirm")
		for _, want := range []string{"instance " + when + " is not registered", "expedite takes no time", "nothing was expedited"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("expedite inst-a %s = %v; want %q", when, err, want)
			}
		}
	}
	if !maps.Equal(before, c.snapshot(t)) {
		t.Fatal("a refused expedite changed Redis")
	}
}
