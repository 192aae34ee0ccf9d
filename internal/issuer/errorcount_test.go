package issuer_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A 2xx whose JSON body counts no errors ("error": 0, "errors": 0, as
// APIs that put a status code or a count of failures beside the answer
// write it) says the call succeeded: read as a failure (error_answer), a
// well-behaved issuer's DELETE would be retried until its revocation is
// archived, never recorded (the contract: a 2xx is revoked), and its
// usage answers would never count.
func TestAnswerCountingNoErrorsIsNoFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{`{"revoked":true,"errors":0}`, `{"error":0,"message":"ok"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if err := scriptedIssuer(t, s).Revoke(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("DELETE answered 200 %s: %v, want revoked", body, err)
		}
		// To verify, "revoked": true says the credential does not work
		// (TestVerifyAnsweredThatTheCredentialDoesNotWorkIsNoYes).
		v := &scripted{status: http.StatusOK, body: strings.Replace(body, `"revoked":true,`, "", 1), header: "application/json"}
		if err := scriptedIssuer(t, v).Verify(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("verify answered 200 %s: %v, want it works", v.body, err)
		}
		u := &scripted{status: http.StatusOK, body: `{"last_used_at":null,` + body[1:], header: "application/json"}
		if _, err := scriptedIssuer(t, u).Usage(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("usage answered 200 %s: %v, want an answer", u.body, err)
		}
	}
}
