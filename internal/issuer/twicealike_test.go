package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A key an answer names twice, in one case or two, with values written
// differently that say the same (null and "", "ok" and "OK", true and
// "true") says one thing, and it is the answer's word: read as two, a mint
// so answered was discarded and revoked and its rotation failed, a DELETE
// was retried and a verify pushed nothing. Values that say two things
// ({"ok":false,"OK":true}) still read as a failure.
func TestAKeyNamedTwiceSayingTheSameIsItsWord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const config = `"credential_id":"cred_1","config":{"MYADDON_URL":"postgres://u:0123456789abcdef@db.example/d"}`
	for _, extra := range []string{`"error":null,"Error":""`, `"status":"ok","Status":"OK"`,
		`"success":true,"Success":"true"`, `"errors":[],"Errors":null`} {
		s := &scripted{status: http.StatusOK, body: `{` + config + `,` + extra + `}`, header: "application/json"}
		if c, err := scriptedIssuer(t, s).Mint(ctx, "inst-1", "rot-1"); err != nil || c.ID != "cred_1" {
			t.Errorf("mint answered 200 with %s: %v, want the credential", extra, err)
		}
		s = &scripted{status: http.StatusOK, body: `{"revoked":true,` + extra + `}`, header: "application/json"}
		if err := scriptedIssuer(t, s).Revoke(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("revoke answered 200 with %s: %v, want revoked", extra, err)
		}
	}
	for _, body := range []string{`{"valid":true,"Valid":"TRUE"}`, `{"revoked":false,"Revoked":"false"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("verify answered 200 %s: %v, want it works", body, err)
		}
	}
	for _, extra := range []string{`"ok":false,"OK":true`, `"error":"locked","Error":null`, `"status":"error","Status":"ok"`} {
		s := &scripted{status: http.StatusOK, body: `{` + config + `,` + extra + `}`, header: "application/json"}
		var e *issuer.Error
		if _, err := scriptedIssuer(t, s).Mint(ctx, "inst-1", "rot-1"); !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer {
			t.Errorf("mint answered 200 with %s: %v, want error_answer", extra, err)
		}
	}
}
