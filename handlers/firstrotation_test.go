package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/tasks"
)

// mintFront forwards every request to the demo issuer, and rewrites the
// config of each 2xx mint answer with edit.
func mintFront(edit func(answer map[string]any)) func(demo http.Handler) http.Handler {
	return func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/credentials" {
				demo.ServeHTTP(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			rec := httptest.NewRecorder()
			demo.ServeHTTP(rec, r)
			var answer map[string]any
			if rec.Code/100 != 2 || json.Unmarshal(rec.Body.Bytes(), &answer) != nil {
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			edit(answer)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_ = json.NewEncoder(w).Encode(answer)
		})
	}
}

// The first rotation of an instance (its current credential the one
// registered at provisioning, whose config rekey never minted) is
// answered by an issuer that mints a new id but hands back the config the
// app already holds (an issuer keyed by instance, a cache). Pushed, it
// would change nothing, the new id would be promoted, and after the grace
// the provisioning credential, whose values the app still runs on, would
// be revoked (I1). The registration's current_config gave rekey the
// provisioning config's fingerprint: the mint is refused (config_reused).
func TestFirstRotationMintedWithTheProvisioningConfigUnderANewID(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	const id = "inst-1"
	live := g.fake.Config(id)[issuer.DefaultConfigVar]
	g.overHandler(t, issuer.VerifyAuto, mintFront(func(answer map[string]any) {
		answer["config"] = map[string]string{issuer.DefaultConfigVar: live}
	}))
	before, _ := g.st.Instance(ctx, id)

	err := g.run(rotateTask(t, id, "rot_first"))
	in, _ := g.st.Instance(ctx, id)
	t.Logf("rotate: err=%v current=%s (was %s) last error code %q", err, in.CurrentCredential, before.CurrentCredential, in.LastErrorCode)

	if revoke := g.enq.get(tasks.RevokeTaskID(id, before.CurrentCredential)); revoke != nil {
		g.later.Store(int64(grace + time.Second))
		_ = g.run(revoke)
	}
	if got := g.fake.Config(id)[issuer.DefaultConfigVar]; got == live && !g.demo.Valid(before.CurrentCredential) {
		t.Fatalf("the app's config still holds the provisioning credential %s's value, and rekey had it revoked (I1); "+
			"the rotation ended with current %s, last error code %q", before.CurrentCredential, in.CurrentCredential, in.LastErrorCode)
	}
	if in.CurrentCredential != before.CurrentCredential || in.LastErrorCode != "mint:config_reused" {
		t.Errorf("current %s (was %s), last error code %q; want the provisioning credential current and mint:config_reused",
			in.CurrentCredential, before.CurrentCredential, in.LastErrorCode)
	}
}
