package issuer_test

import (
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A 2xx to DELETE whose whole body is plain text naming a failure ("error",
// "Internal Server Error", "not authorized": a framework or proxy answering
// every call 200 with its error as text, Content-Type text/plain or
// text/html as Express and Flask label any text) is no revocation: read as
// one, the credential was recorded revoked while it stayed valid (I3). It
// is checked with verify: a 409, 410 or 422 records the revocation, else
// it is retried (error_answer). A text that names no failure ("OK",
// "revoked", an empty body) and JSON without one stay the contract's 2xx,
// revoked at once without asking verify.
func TestRevokeAnswered2xxWithAnErrorTextIsChecked(t *testing.T) {
	t.Parallel()
	unsupported := reply{404, "application/json", `{"error":"verify_unsupported"}`}
	works := reply{200, "application/json", `{"valid":true}`}
	gone := reply{410, "application/json", `{"error":"credential_revoked"}`}
	for _, del := range []reply{
		{200, "text/plain", "error"},
		{200, "text/plain; charset=utf-8", "Error\n"},
		{200, "text/html; charset=utf-8", "failed"},
		{200, "text/plain", "Internal Server Error"},
		{200, "", "500 Internal Server Error"},
		{200, "text/plain", "not authorized"},
		{200, "text/plain", "Unauthorized."},
		{200, "text/plain", "Forbidden"},
		{202, "text/plain", "Error: credential locked"},
		{200, "application/json", `"error"`},
		{200, "text/plain", "  FAILURE  "},
		{200, "text/plain", "HTTP/1.1 500 Internal Server Error"},
		{200, "text/plain", "500"},
		{200, "text/plain", "Error 500"},
		{200, "text/plain", "error 503: try later"},
	} {
		for _, c := range []struct {
			verify reply
			code   string // "" for revoked
		}{
			{unsupported, issuer.CodeErrorAnswer},
			{works, issuer.CodeStillWorks},
			{gone, ""},
		} {
			asked, err := revokeAgainst(t, del, c.verify)
			var e *issuer.Error
			switch {
			case asked != 1:
				t.Errorf("DELETE %d %q, verify %d: %d verifies asked, want 1", del.status, del.body, c.verify.status, asked)
			case c.code == "" && err != nil:
				t.Errorf("DELETE %d %q, verify %d: Revoke = %v, want revoked", del.status, del.body, c.verify.status, err)
			case c.code != "" && (!errors.As(err, &e) || e.Code != c.code || !issuer.IsTransient(err)):
				t.Errorf("DELETE %d %q, verify %d: Revoke = %#v, want a transient %s", del.status, del.body, c.verify.status, err, c.code)
			}
		}
	}
	for _, del := range []reply{
		{200, "text/plain", "OK"},
		{200, "text/plain", "ok\n"},
		{200, "text/plain", "revoked"},
		{200, "text/html; charset=utf-8", "Deleted"},
		{200, "text/plain", "credential revoked, no error"},
		{200, "text/plain", "errors: 0"},
		{200, "text/plain", "200"},
		{200, "text/plain", "HTTP/1.1 200 OK"},
		{204, "", ""},
		{200, "application/json", `{"revoked":true}`},
		{200, "application/json", `{"error":null,"status":"ok"}`},
		{200, "application/json", `"revoked"`},
		{200, "application/json", `true`},
	} {
		asked, err := revokeAgainst(t, del, works)
		if err != nil || asked != 0 {
			t.Errorf("DELETE %d %q: Revoke = %v after %d verifies, want revoked without asking", del.status, del.body, err, asked)
		}
	}
}

// A 2xx to DELETE whose whole body is the text of a 404 or a 410 ("Not
// Found", "404 Not Found", "Gone": a catch-all route's answer, or a proxy
// that answers every call 200) is checked with verify as a 404 is: revoked
// unless verify says the credential works, when the DELETE never reached
// the issuer (still_works). It was recorded revoked without asking.
func TestRevokeAnswered2xxWithANotFoundTextIsChecked(t *testing.T) {
	t.Parallel()
	unsupported := reply{404, "application/json", `{"error":"verify_unsupported"}`}
	works := reply{200, "application/json", `{"valid":true}`}
	for _, del := range []reply{
		{200, "text/plain", "Not Found"},
		{200, "text/plain", "404 Not Found"},
		{200, "text/plain", "404"},
		{200, "text/html; charset=utf-8", "Gone"},
	} {
		if asked, err := revokeAgainst(t, del, unsupported); err != nil || asked != 1 {
			t.Errorf("DELETE %d %q, no verify: Revoke = %v after %d verifies, want revoked after asking once", del.status, del.body, err, asked)
		}
		asked, err := revokeAgainst(t, del, works)
		var e *issuer.Error
		if asked < 1 || !errors.As(err, &e) || e.Code != issuer.CodeStillWorks {
			t.Errorf("DELETE %d %q, verify works: Revoke = %v after %d verifies, want still_works", del.status, del.body, err, asked)
		}
	}
}
