package handlers_test

import (
	"net/http"
	"testing"
)

// A DELETE answered 200 with JSON that says it failed in keys of another
// case than rekey's ("Success", "Error": ASP.NET's serializer writes
// PascalCase by default), or that names a key twice and says it failed in
// one of them, is no revocation: read as the contract's bare 2xx, the
// credential was recorded revoked while it kept working at the issuer, and
// nothing ever revoked it (I3). It is retried, and once the issuer answers
// as the contract says, revoked.
func TestRevokeAnswered200WithAFailureInKeysOfAnotherCaseIsRetried(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"pascal case":           `{"Success":false,"Error":"Could not revoke the credential"}`,
		"upper case ok":         `{"OK":false}`,
		"jsend status":          `{"Status":"Error","Message":"revocation failed"}`,
		"ok twice, false first": `{"ok":false,"ok":true}`,
		"error then null":       `{"error":"locked","error":null}`,
		"error in two cases":    `{"Error":"locked","error":""}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			revokeThroughFront(t, frontAnswer{http.StatusOK, "application/json; charset=utf-8", body})
		})
	}
}
