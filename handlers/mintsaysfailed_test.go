package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// A mint answered 2xx with a credential and, in the same JSON, that the
// mint failed ("error", "success": false, a JSend "status" of "error", in
// any case: a role created but its grants or its replication to the read
// replicas failed) was pushed to every app of the instance as any other,
// under an issuer without verify, and the credential that worked was
// revoked after the grace. The answer is ambiguous: the credential it
// names is recorded discarded, due for revocation, never pushed, and the rotation
// fails (mint:error_answer), the instance keeping its credential.
func TestAMintAnswerSayingItFailedIsNeverPushed(t *testing.T) {
	t.Parallel()
	for name, failed := range map[string]map[string]any{
		"error":         {"error": "grants on the schema failed"},
		"success false": {"Success": false, "Message": "replication to the read replicas failed"},
		"jsend status":  {"status": "error"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t, issuer.WithoutVerify())
			var mintedID atomic.Value
			g.overHandler(t, issuer.VerifyAuto, func(demo http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodPost || r.URL.Path != "/credentials" {
						demo.ServeHTTP(w, r)
						return
					}
					rec := httptest.NewRecorder()
					demo.ServeHTTP(rec, r)
					var answer map[string]any
					if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
						t.Errorf("demo's mint answer: %v", err)
					}
					mintedID.Store(answer["credential_id"])
					for k, v := range failed {
						answer[k] = v
					}
					var b bytes.Buffer
					_ = json.NewEncoder(&b).Encode(answer)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(rec.Code)
					_, _ = w.Write(b.Bytes())
				})
			})
			ctx := context.Background()
			before, _ := g.st.Instance(ctx, "inst-1")

			err := g.run(rotateTask(t, "inst-1", "rot_sf"))
			rot, _ := g.st.Rotation(ctx, "rot_sf")
			if n := g.fake.ConfigChanges("inst-1"); n != 0 {
				t.Fatalf("rotate = %v, rotation %s: %d config changes on Heroku, want none", err, rot.State, n)
			}
			in, _ := g.st.Instance(ctx, "inst-1")
			if !isPermanent(err) || rot.State != store.RotationFailed || in.CurrentCredential != before.CurrentCredential ||
				in.LastErrorCode != "mint:error_answer" {
				t.Fatalf("rotate = %v, rotation %s, current %s (was %s), last error %s; want failed mint:error_answer, kept",
					err, rot.State, in.CurrentCredential, before.CurrentCredential, in.LastErrorCode)
			}
			id, _ := mintedID.Load().(string)
			minted, err := g.st.Credential(ctx, "inst-1", id)
			if err != nil || minted.State != store.CredentialDiscarded || minted.RevokeAt.IsZero() {
				t.Errorf("minted credential %q: %s, revoke at %s, %v; want discarded, due", id, minted.State, minted.RevokeAt, err)
			}
		})
	}
}
