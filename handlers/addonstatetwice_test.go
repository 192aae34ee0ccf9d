package handlers_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An answer to GET /addons/{id} that names its state twice holds two
// states, and which one Heroku meant cannot be told: encoding/json keeps
// the last. Read as "deprovisioned", it set the instance aside and proved
// the config empty, so that a credential Heroku may hold was discarded and
// revoked (I1). It is no answer: the instance stays, the credential is kept
// unconfirmed and unrevoked.
func TestAnAddonStateNamedTwiceSetsNothingAside(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"same case":  `{"id":"inst-1","state":"provisioned","state":"deprovisioned"}`,
		"other case": `{"id":"inst-1","state":"provisioned","State":"deprovisioned"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet && r.URL.Path == "/addons/inst-1" {
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(body))
					return
				}
				g.fake.ServeHTTP(w, r)
			}), 5*time.Second)
			g.fake.Script(herokufake.PatchConfig, herokufake.Respond(403))
			g.fake.Script(herokufake.GetConfig, herokufake.Respond(403))
			if err := g.run(rotateTask(t, "inst-1", "rot-1")); !isPermanent(err) {
				t.Fatalf("err = %v, want permanent", err)
			}
			rot, _ := g.st.Rotation(ctx, "rot-1")
			c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
			if c.State != store.CredentialUnconfirmed || !g.demo.Valid(c.ID) || g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)) != nil {
				t.Errorf("credential %s (valid %v); want unconfirmed, valid and no revoke queued", c.State, g.demo.Valid(c.ID))
			}
			if in, _ := g.st.Instance(ctx, "inst-1"); in.Quarantined() || in.Deprovisioned() {
				t.Errorf("instance quarantined %v (%q), deprovisioned %v; want neither", in.Quarantined(), in.QuarantineReason, in.Deprovisioned())
			}
		})
	}
}
