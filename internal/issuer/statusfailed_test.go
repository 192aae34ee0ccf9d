package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A 2xx whose JSON body says it failed the way JSend-style APIs say it
// ("status": "error" or "fail", the HTTP status left at 200) is not a
// revocation: read as one, the credential is recorded revoked while it
// keeps working at the issuer, and nothing ever revokes it (I3). Nor is
// it a verify's "it works". A status that names no failure is the
// contract's 2xx.
func TestAnswerWithAFailedStatusIsNoRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{
		`{"status":"error","message":"could not revoke the credential"}`,
		`{"status":"fail","data":{"credential_id":"locked"}}`,
		`{"status":"FAILED"}`,
	} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		var e *issuer.Error
		err := scriptedIssuer(t, s).Revoke(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("DELETE answered 200 %s: %v, want a transient error_answer", body, err)
		}
		err = scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer {
			t.Errorf("verify answered 200 %s: %v, want error_answer", body, err)
		}
	}
	for _, body := range []string{`{"status":"revoked"}`, `{"status":"ok"}`, `{"status":"success"}`, `{"status":200}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if err := scriptedIssuer(t, s).Revoke(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("DELETE answered 200 %s: %v, want revoked", body, err)
		}
	}
}
