package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A verify answered 200 whose JSON says the credential does not work, or
// that the call failed, in keys of another case than rekey's ("Valid",
// "Error": ASP.NET's serializer writes PascalCase by default), or in a key
// it names twice with two values, is no word that it works: read as the
// bare 2xx, the credential was pushed to every app of the instance. The
// same keys saying only that it works, in any case or twice alike, are the
// contract's 2xx.
func TestVerifyAnsweredInKeysOfAnotherCaseOrNamedTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{`{"Valid":false}`, `{"WORKS":false}`, `{"Revoked":true}`,
		`{"Success":false,"Error":"credential locked"}`, `{"valid":false,"valid":true}`,
		`{"revoked":true,"Revoked":false}`, `{"ok":false,"OK":true}`, `{"status":"error","Status":"ok"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		var e *issuer.Error
		err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("verify answered 200 %s: %v, want a transient error_answer", body, err)
		}
	}
	for _, body := range []string{`{"Valid":true}`, `{"valid":true,"Valid":true}`, `{"Revoked":false,"Message":"a","message":"b"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("verify answered 200 %s: %v, want it works", body, err)
		}
	}
}
