package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
)

// This file plays Heroku's provisioning side and an impatient partner
// around an instance's lifecycle, over real HTTP to `rekey web`: an add-on
// deprovisioned while its rotation's push is in flight, the partner's
// DELETE sent twice at once, and the same id provisioned again.

// deleteTwice sends the partner's DELETE of id twice at once, as a
// provisioning service retrying before its first answer came, and returns
// both statuses.
func deleteTwice(t *testing.T, base, id string) [2]int {
	t.Helper()
	var got [2]int
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = call(t, http.MethodDelete, base+"/api/v1/instances/"+id, "")
		}()
	}
	wg.Wait()
	return got
}

func TestAdversarialDeprovisionedWhilePushInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	base := w.startWeb(nil)
	w.startWorker(workerParams{retryDelay: fastRetry, sweep: true})

	// A first rotation: the provisioning credential waits for its grace.
	first := w.rotate(s.ID)
	w.waitBatch(first.BatchID, 30*time.Second)

	// The second one's push is on its way when Heroku deprovisions the
	// add-on and the partner sends its DELETE, twice at once: the push is
	// answered 404.
	w.sb.Fake.Script(herokufake.PatchConfig, herokufake.Delay(time.Second))
	res := w.rotate(s.ID)
	rotationID := res.Items[0].RotationID
	waitFor(t, 10*time.Second, "push attempted", func() (bool, string) {
		rot, err := w.store.Rotation(ctx, rotationID)
		return err == nil && rot.PushAttempted, fmt.Sprintf("%+v %v", rot, err)
	})
	w.sb.Fake.Deprovision(s.ID)
	if got := deleteTwice(t, base, s.ID); got != [2]int{200, 200} {
		t.Errorf("two DELETEs at once: %v, want 200 twice", got)
	}
	w.waitBatch(res.BatchID, 30*time.Second)
	w.waitRevoked(15 * time.Second)
	rot, _ := w.store.Rotation(ctx, rotationID)
	c, _ := w.store.Credential(ctx, s.ID, rot.CredentialID)
	if rot.State != store.RotationFailed || c.State != store.CredentialDiscarded || !c.Revoked() || w.sb.Demo.Valid(c.ID) {
		t.Errorf("rotation %s, minted credential %+v (valid %v); want failed, discarded and revoked", rot.State, c, w.sb.Demo.Valid(c.ID))
	}
	in, _ := w.store.Instance(ctx, s.ID)
	if !in.Deprovisioned() || in.InFlight != "" {
		t.Errorf("instance: deprovisioned %v, in flight %q; want deprovisioned, nothing in flight", in.Deprovisioned(), in.InFlight)
	}
	if status, body := call(t, http.MethodDelete, base+"/api/v1/instances/"+s.ID, ""); status != http.StatusOK {
		t.Errorf("a DELETE retried later: %d %s, want 200", status, body)
	}

	// The same id provisioned again starts clean: the old add-on's failed
	// push is no failure of the new one's.
	put := `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"reprovisioned-1","oauth_grant":{"code":"` +
		w.sb.Fake.GrantCode(s.ID) + `"}}`
	status, body := call(t, http.MethodPut, base+"/api/v1/instances/"+s.ID, put)
	if status != http.StatusOK {
		t.Fatalf("provisioned again: %d %s", status, body)
	}
	in, _ = w.store.Instance(ctx, s.ID)
	if in.Deprovisioned() || in.InFlight != "" || in.Quarantined() || in.LastError != "" || in.LastErrorCode != "" {
		t.Errorf("instance provisioned again: %+v; want live, clean", in)
	}
	if strings.Contains(body, "last_error") {
		t.Errorf("the new registration answers with the old one's error: %s", body)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}
