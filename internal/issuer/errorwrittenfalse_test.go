package issuer_test

import (
	"context"
	"net/http"
	"testing"
)

// A 2xx whose "error" or "errors" writes false or none as PHP, MySQL or an
// issuer writing every value as a string writes it ("false", "0", "no") says
// the call did not fail, as "ok": "true" says it succeeded: a mint so
// answered was discarded and its rotation failed for good (mint:error_answer),
// a DELETE retried for ever and a verify pushed nothing, where the same keys
// written as JSON's false or 0 were the contract's 2xx.
func TestAnErrorWrittenFalseAsAStringIsNoFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, extra := range []string{`"error":"false"`, `"error":"0"`, `"errors":"0"`, `"Error":"FALSE"`,
		`"error":"no"`, `"error":" false "`} {
		mint := `{"credential_id":"cred_1","config":{"MYADDON_URL":"postgres://u:0123456789abcdef@db.example/d"},` + extra + `}`
		s := &scripted{status: http.StatusOK, body: mint, header: "application/json"}
		if c, err := scriptedIssuer(t, s).Mint(ctx, "inst-1", "rot-1"); err != nil || c.ID != "cred_1" {
			t.Errorf("mint answered 200 with %s: %v, want the credential", extra, err)
		}
		s = &scripted{status: http.StatusOK, body: `{"revoked":true,` + extra + `}`, header: "application/json"}
		if err := scriptedIssuer(t, s).Revoke(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("revoke answered 200 with %s: %v, want revoked", extra, err)
		}
	}
	for _, extra := range []string{`"error":"true"`, `"error":"locked"`, `"errors":"1"`} {
		mint := `{"credential_id":"cred_1","config":{"MYADDON_URL":"postgres://u:0123456789abcdef@db.example/d"},` + extra + `}`
		s := &scripted{status: http.StatusOK, body: mint, header: "application/json"}
		if _, err := scriptedIssuer(t, s).Mint(ctx, "inst-1", "rot-1"); err == nil {
			t.Errorf("mint answered 200 with %s: no error, want error_answer", extra)
		}
	}
}
