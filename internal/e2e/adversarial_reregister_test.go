package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// TestAdversarialStaleRegistrationOfRotatedInstance plays a partner whose
// provisioning PUT comes again (a retry, a replayed import) after the
// instance rotated and was deleted: it names the credential rekey rotated
// away, which waits for revocation. The web process refuses it (422, the
// credential and its state named), changes nothing, and spends no grant;
// a new provisioning with a new credential registers the instance again.
func TestAdversarialStaleRegistrationOfRotatedInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	h, err := web.New(web.Params{Store: w.store, Producer: fleet.NewProducer(w.store, w.queue),
		Registry: registry.New(w.store, w.hc), Inspector: w.insp, Enqueuer: w.queue, APIToken: secret.New(advAPIToken),
		DashboardPassword: secret.New(advPassword), SSOSalt: secret.New(advSSOSalt), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	const id = "stale-put"
	url := srv.URL + "/api/v1/instances/" + id
	first := w.addAddon(id)
	withGrant := func(cred string) string {
		return `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"` + cred +
			`","oauth_grant":{"code":"` + w.sb.Fake.GrantCode(id) + `"}}`
	}
	withTokens := `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"` + first.ID +
		`","oauth":{"refresh_token":"held-refresh","access_token":"held-access","expires_at":"2030-01-01T00:00:00Z"}}`
	if status, body := call(t, http.MethodPut, url, withGrant(first.ID)); status != http.StatusOK {
		t.Fatalf("provisioning PUT: %d %s", status, body)
	}
	// One rotation: the provisioned credential becomes previous, due for
	// revocation after the grace.
	if _, err := w.store.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: "rot-stale-1"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:r0tated@db/stale")}
	if err := w.store.SavePending(ctx, id, "rot-stale-1", "cred-rotated", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Promote(ctx, id, "rot-stale-1", "cred-rotated", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if status, body := call(t, http.MethodDelete, url, ""); status/100 != 2 {
		t.Fatalf("DELETE: %d %s", status, body)
	}

	before := redistest.Dump(t, w.redis)
	for name, body := range map[string]string{"with a new grant": withGrant(first.ID), "with held tokens": withTokens} {
		status, resp := call(t, http.MethodPut, url, body)
		if status != http.StatusUnprocessableEntity || !strings.Contains(resp, first.ID) ||
			!strings.Contains(resp, "previous credential") || !strings.Contains(resp, "nothing was stored") {
			t.Errorf("stale PUT %s naming the previous credential: %d %s; want 422 naming it", name, status, resp)
		}
	}
	if after := redistest.Dump(t, w.redis); after != before {
		t.Fatalf("a refused registration changed Redis")
	}
	if in, _ := w.store.Instance(ctx, id); !in.Deprovisioned() {
		t.Fatal("a stale PUT brought the deprovisioned instance back")
	}
	if c, _ := w.store.Credential(ctx, id, first.ID); c.State != store.CredentialPrevious {
		t.Fatalf("%s is %s, want still previous (waiting for revocation)", first.ID, c.State)
	}

	// A later provisioning with a new credential registers it again.
	if status, body := call(t, http.MethodPut, url, withGrant("cred-reprovisioned")); status != http.StatusOK {
		t.Fatalf("PUT with a new credential after DELETE: %d %s", status, body)
	}
	if in, _ := w.store.Instance(ctx, id); in.Deprovisioned() || in.CurrentCredential != "cred-reprovisioned" {
		t.Fatalf("after the new provisioning: deprovisioned %v, current %q", in.Deprovisioned(), in.CurrentCredential)
	}
}
