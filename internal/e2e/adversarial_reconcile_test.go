package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// refusalSecret is in every refusal the issuer sends: it must not reach
// the dead-letter set or what the operator's commands print.
const refusalSecret = "postgres://u17:pw17-refused@db/x"

// rotatedInStore registers id with a credential minted by the demo issuer
// and rotates it through the store, as the handlers would, to a second
// one: the first is previous, due for revocation at once.
func rotatedInStore(t *testing.T, w *world, id string) *store.Revocation {
	t.Helper()
	ctx := context.Background()
	c0, err := w.sb.Demo.Mint(ctx, id, "provision")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: c0.ID}); err != nil {
		t.Fatal(err)
	}
	rot := "rot-" + id
	if _, err := w.store.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: rot}); err != nil {
		t.Fatal(err)
	}
	c1, err := w.sb.Demo.Mint(ctx, id, rot)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.SavePending(ctx, id, rot, c1.ID, c1.Config); err != nil {
		t.Fatal(err)
	}
	prev, err := w.store.Promote(ctx, id, rot, c1.ID, time.Millisecond, "")
	if err != nil || prev == nil {
		t.Fatalf("promote %s: %v, %v", id, prev, err)
	}
	return prev
}

// Case 7 of issue 8. 600 revocations the issuer refuses for good (422 over
// real HTTP) sit at the head of the due index; behind them is a revocation
// whose task was lost. The sweep used to read only the 500 oldest entries,
// so the lost one was never recovered. Now it walks the whole index: the
// lost revocation is recovered and revoked, the refused ones are set aside
// in the dead-letter set (gauge, audit events, `rekey revocations dead`),
// and `rekey revocations retry --all` brings them back once the issuer is
// fixed.
func TestDeadRevocationsDoNotHideALostOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var refuse atomic.Bool
	refuse.Store(true)
	w := newWorld(t, worldParams{demo: []issuer.DemoOption{issuer.WithRevokeFault(func(instanceID, _ string) error {
		if refuse.Load() && strings.HasPrefix(instanceID, "dead-") {
			// The demo issuer sends Code as its answer's "error" text.
			return &issuer.Error{Op: "revoke", Status: 422, Code: "cannot revoke while " + refusalSecret + " is busy"}
		}
		return nil
	})}})
	const dead = 600
	for i := range dead {
		prev := rotatedInStore(t, w, fmt.Sprintf("dead-%03d", i))
		task, _ := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: prev.InstanceID, CredentialID: prev.CredentialID}, prev.RevokeAt)
		if _, err := w.queue.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	lost := rotatedInStore(t, w, "zz-lost") // due after every refused one; its task was never enqueued

	w.startWorker(workerParams{sweep: true})
	waitFor(t, 90*time.Second, "lost revocation recovered and 600 set aside", func() (bool, string) {
		c, _ := w.store.Credential(ctx, lost.InstanceID, lost.CredentialID)
		n, _ := w.store.CountDeadRevocations(ctx)
		return c.Revoked() && n == dead, fmt.Sprintf("lost credential %s, %d dead", c.State, n)
	})
	if w.sb.Demo.Valid(lost.CredentialID) {
		t.Error("the lost revocation is recorded but the issuer still honours the credential")
	}
	if n, _ := w.store.PendingRevocations(ctx); n != 0 {
		t.Errorf("%d revocations still due; the refused ones must have left the due index", n)
	}
	if got := scrapeMetric(t, w, "rekey_revocations_dead"); got != fmt.Sprint(dead) {
		t.Errorf("rekey_revocations_dead = %q, want %d", got, dead)
	}
	if n := countEvents(t, w, store.EventRevocationDead); n != dead {
		t.Errorf("%d %s events, want %d", n, store.EventRevocationDead, dead)
	}

	env := w.sb.Env(w.redis.URL)
	listing := runRekey(t, env, "revocations", "dead", "--json")
	var rows []struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(listing[strings.Index(listing, "["):]), &rows); err != nil || len(rows) != dead {
		t.Fatalf("revocations dead --json: %d rows (%v), want %d", len(rows), err, dead)
	}
	// Rows come in the order the sweep set them aside, which is the
	// workers' order; each refused instance must be there once.
	listed := make(map[string]bool, dead)
	for _, r := range rows {
		inst, _, _ := strings.Cut(r.ID, "/")
		if !strings.HasPrefix(inst, "dead-") || r.Reason != store.DeadRefused || listed[inst] {
			t.Fatalf("revocations dead --json: unexpected or repeated row %+v", r)
		}
		listed[inst] = true
	}
	if strings.Contains(listing, refusalSecret) {
		t.Error("the issuer's refusal text reached the dead-letter listing")
	}

	refuse.Store(false) // the partner fixes the issuer
	out := runRekey(t, env, "revocations", "retry", "--all")
	if !strings.Contains(out, fmt.Sprintf("%d dead revocations moved back", dead)) {
		t.Fatalf("revocations retry --all said:\n%s", out)
	}
	w.waitRevoked(90 * time.Second)
	if n, _ := w.store.CountDeadRevocations(ctx); n != 0 {
		t.Errorf("%d dead after the retry, want 0", n)
	}
	if got := scrapeMetric(t, w, "rekey_revocations_dead"); got != "0" {
		t.Errorf("rekey_revocations_dead = %q after the retry, want 0", got)
	}
	t.Logf("%d refused revocations set aside and retried; the lost one behind them revoked", dead)
}

// runRekey runs the rekey binary to completion and returns what it printed;
// a non-zero exit fails the test.
func runRekey(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	p := startRekey(t, env, args...)
	if code := p.exit(2 * time.Minute); code != 0 {
		t.Fatalf("rekey %s exited %d:\n%s", strings.Join(args, " "), code, p.stderr.String())
	}
	return p.stderr.String()
}

// scrapeMetric reads one unlabelled gauge from rekey's /metrics handler over
// HTTP.
func scrapeMetric(t *testing.T, w *world, name string) string {
	t.Helper()
	srv := httptest.NewServer(metrics.NewCollector(w.store, w.insp, zerolog.Nop()).Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// countEvents counts the fleet's audit events of one type.
func countEvents(t *testing.T, w *world, typ string) int {
	t.Helper()
	events, err := w.store.FleetEvents(context.Background(), 100_000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// Case 14 of issue 8: a cancelled rotation expires like a finished one, and
// a deprovisioned instance's keys expire after the audit retention, but only
// once its last waiting credential is revoked.
func TestCancelledRotationsAndDeprovisionedInstancesExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	s := w.provision(2, sandbox.Mix{})

	// A batch cancelled before its worker starts: its rotation never runs.
	res := w.rotate(s[1].ID)
	if _, err := fleet.Cancel(ctx, w.store, w.insp, res.BatchID); err != nil {
		t.Fatal(err)
	}
	cancelled := res.Items[0].RotationID
	rot, err := w.store.Rotation(ctx, cancelled)
	if err != nil || rot.State != store.RotationCancelled {
		t.Fatalf("rotation %s: %+v, %v; want cancelled", cancelled, rot, err)
	}
	if d, err := w.store.RotationExpiry(ctx, cancelled); err != nil || d < 29*24*time.Hour {
		t.Errorf("cancelled rotation expires in %s (%v); want about 30 days", d, err)
	}

	w.startWorker(workerParams{sweep: true})
	id := s[0].ID
	rotated := w.rotate(id)
	info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rotated.Items[0].RotationID), 30*time.Second)
	if info.State != asynq.TaskStateCompleted {
		t.Fatalf("rotation task %s: %s", info.ID, info.LastErr)
	}
	if err := w.store.Deprovision(ctx, id); err != nil {
		t.Fatal(err)
	}
	prev, err := w.store.Previous(ctx, id)
	if err != nil || len(prev) != 1 {
		t.Fatalf("previous credentials of %s: %v, %v; want the provisioning one waiting", id, prev, err)
	}
	if d, _ := w.store.InstanceExpiry(ctx, id); d != 0 {
		t.Fatalf("deprovisioned instance expires in %s while %s waits for revocation", d, prev[0].CredentialID)
	}
	w.waitRevoked(30 * time.Second)
	waitFor(t, 10*time.Second, "expiry of the deprovisioned instance", func() (bool, string) {
		d, err := w.store.InstanceExpiry(ctx, id)
		return d > 0, fmt.Sprintf("expiry %s, %v", d, err)
	})
	if d, _ := w.store.InstanceExpiry(ctx, id); d < store.DefaultAuditRetention-time.Hour || d > store.DefaultAuditRetention {
		t.Errorf("instance expires in %s, want the audit retention %s", d, store.DefaultAuditRetention)
	}
	if w.sb.Demo.Valid(prev[0].CredentialID) {
		t.Error("the deprovisioned instance's waiting revocation did not happen")
	}
}
