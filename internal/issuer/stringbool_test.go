package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// An issuer that writes its booleans as strings ("false", "TRUE", " true ")
// says what one writing them as JSON booleans says: a 2xx to DELETE whose
// "ok", "success" or "revoked" is "false" is no revocation (I3), and a
// verify 2xx whose "valid" or "works" is "false", or "revoked" "true", is no
// word that the credential works (I1). Read as anything but false, each was
// recorded revoked, or pushed to the apps. The same strings saying the
// opposite are the contract's 2xx.
func TestAnswerWithBooleansWrittenAsStrings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{`{"ok":"false"}`, `{"success":"false"}`, `{"revoked":"false"}`,
		`{"ok":"FALSE"}`, `{"credential_id":"cred_1","revoked":" False "}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		var e *issuer.Error
		err := scriptedIssuer(t, s).Revoke(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("DELETE answered 200 %s: %v, want a transient error_answer", body, err)
		}
	}
	for _, body := range []string{`{"valid":"false"}`, `{"works":"False"}`, `{"revoked":"true"}`,
		`{"credential_id":"cred_1","revoked":"TRUE"}`, `{"ok":"false"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		var e *issuer.Error
		err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("verify answered 200 %s: %v, want a transient error_answer", body, err)
		}
	}
	for _, body := range []string{`{"ok":"true"}`, `{"success":"True"}`, `{"revoked":"true"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if err := scriptedIssuer(t, s).Revoke(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("DELETE answered 200 %s: %v, want revoked", body, err)
		}
	}
	for _, body := range []string{`{"valid":"true"}`, `{"works":"TRUE"}`, `{"revoked":"false"}`, `{"ok":"true"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("verify answered 200 %s: %v, want it works", body, err)
		}
	}
}
