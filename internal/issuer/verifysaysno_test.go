package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A verify answered 200 whose JSON says the credential does not work
// ({"valid": false}, {"works": false}, {"revoked": true}: an issuer that
// answers its credential's state rather than a status) is no word that it
// works: pushed on it, every app of the instance restarts on a credential
// that does not work. It is an error_answer, asked again later, and
// nothing is pushed; so does false written as PHP, MySQL or PostgreSQL
// write it (0, "0", "no", "n", "off", "f"). The same keys saying it works
// are the contract's 2xx, 1 and "yes" included.
func TestVerifyAnsweredThatTheCredentialDoesNotWorkIsNoYes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{`{"valid":false}`, `{"credential_id":"cred_1","works":false}`,
		`{"credential_id":"cred_1","revoked":true}`, `{"valid":0}`, `{"valid":"0"}`, `{"valid":"No"}`, `{"works":"off"}`,
		`{"valid":"n"}`, `{"valid":"f"}`, `{"valid":-0.0}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		var e *issuer.Error
		err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("verify answered 200 %s: %v, want a transient error_answer", body, err)
		}
	}
	for _, body := range []string{`{"valid":true}`, `{"works":true}`, `{"revoked":false}`, `{"valid":"yes"}`, `{"valid":1}`, `{"valid":"1"}`,
		`{"revoked":0}`, `{"revoked":"no"}`} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("verify answered 200 %s: %v, want it works", body, err)
		}
	}
}

// TestVerifyAnsweredAnErrorTextIsNoYes: a verify answered 2xx with a text
// naming a failure (a framework answering every call 200 and writing its
// error as text) says nothing about the credential: rekey never pushes on
// it, as it pushes on no JSON body saying the call failed.
func TestVerifyAnsweredAnErrorTextIsNoYes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{"Internal Server Error", "error", "500 Internal Server Error\n", "Error: issuer database down"} {
		s := &scripted{status: http.StatusOK, body: body, header: "text/plain"}
		var e *issuer.Error
		err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("verify answered 200 %q: %v, want a transient error_answer", body, err)
		}
	}
	for _, body := range []string{"OK", "valid", ""} {
		s := &scripted{status: http.StatusOK, body: body, header: "text/plain"}
		if err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("verify answered 200 %q: %v, want it works", body, err)
		}
	}
}

// TestVerifyAnsweredANotFoundTextIsNoYes: a verify answered 2xx with the
// text of a 404 or a 410 ("Not Found", "404 Not Found", "Gone": a catch-all
// or a framework answering 200 with the status it meant as text) says the
// credential is unknown or gone, as the 410 it names does: never "works",
// so nothing is pushed on it.
func TestVerifyAnsweredANotFoundTextIsNoYes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{"Not Found", "404 Not Found\n", "Gone", "410 Gone", "not found.", `"Not Found"`,
		"Not Found: no such credential"} {
		s := &scripted{status: http.StatusOK, body: body, header: "text/plain"}
		var e *issuer.Error
		err := scriptedIssuer(t, s).Verify(ctx, "inst-1", "cred_1")
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("verify answered 200 %q: %v, want a transient error_answer", body, err)
		}
	}
}
