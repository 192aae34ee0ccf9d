package issuer_test

import (
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// verifyNoAnswers are verify 2xx answers that say the credential does not
// work in an issuer's own words, its state rather than a status.
var verifyNoAnswers = []reply{
	{200, "application/json", `{"valid":false}`},
	{200, "application/json", `{"credential_id":"cred_1","works":false}`},
	{200, "application/json", `{"credential_id":"cred_1","revoked":true}`},
	{200, "application/json", `{"valid":"false"}`},
	{200, "application/json; charset=utf-8", `{"revoked":"TRUE","valid":false}`},
}

// verifyAmbiguousAnswers are verify 2xx answers that say the call failed,
// or say both that the credential works and that it does not: no word on
// the credential.
var verifyAmbiguousAnswers = []reply{
	{200, "application/json", `{"valid":false,"error":"database_unavailable"}`},
	{200, "application/json", `{"status":"error","revoked":true}`},
	{200, "application/json", `{"valid":false,"works":true}`},
	{200, "application/json", `{"revoked":true,"valid":true}`},
	{200, "application/json", `{"ok":false}`},
	{200, "application/json", `{"valid":"yes","revoked":true}`},
}

// A verify 2xx whose body says the credential does not work ("valid" or
// "works" false, "revoked" true) is the issuer's word that it does not
// work, as its 409, 410 or 422 is: after a DELETE answered 404, a page or
// 410, it records the revocation. It was read as "works": the revocation
// stayed still_works, retried and overdue for ever, though the issuer said
// each time the credential was gone. A verify answer that also says the
// call failed, or says both, is no word on the credential and records
// nothing the DELETE's answer alone did not.
func TestRevokeConfirmedByAVerifySayingTheCredentialDoesNotWork(t *testing.T) {
	t.Parallel()
	dels := map[string]reply{
		"404":  {404, "application/json", `{"error":"no_such_credential"}`},
		"koa":  unroutedNotFound["koa"],
		"page": hiddenPages["meta refresh"],
		"410":  {410, "application/json", `{"error":"credential_revoked"}`},
	}
	for name, del := range dels {
		for _, v := range verifyNoAnswers {
			asked, err := revokeAgainst(t, del, v)
			if err != nil || asked != 1 {
				t.Errorf("DELETE %s, verify %s: Revoke = %v after %d verifies, want revoked after 1", name, v.body, err, asked)
			}
		}
		for _, v := range verifyAmbiguousAnswers {
			_, err := revokeAgainst(t, del, v)
			if err == nil {
				t.Errorf("DELETE %s, verify %s: revoked, want an error", name, v.body)
			}
		}
	}
	// An issuer that answers a 2xx error body to every verify, whatever
	// the id: its answer for cred_1 says nothing, the 404 keeps the
	// contract's meaning.
	for _, v := range verifyAmbiguousAnswers {
		if _, err := revokeAgainstProbed(t, dels["404"], v, v); err != nil {
			t.Errorf("DELETE 404, every verify %s: Revoke = %v, want revoked", v.body, err)
		}
		var e *issuer.Error
		if _, err := revokeAgainstProbed(t, dels["page"], v, v); !errors.As(err, &e) || e.Code != issuer.CodePageAnswer {
			t.Errorf("DELETE page, every verify %s: Revoke = %v, want page_answer", v.body, err)
		}
	}
}

// The random id's probe (a stub's check) answered 2xx saying that id does
// not work ({"valid": false}, or an error in the body), while verify said
// cred_1 works: the issuer tells credentials apart, and its "works" for
// cred_1 stands: the DELETE's 404 never reached it, retried (still_works).
// It was read as the stub's "works for any", and the 404 recorded a
// revocation while the credential kept working (I3).
func TestRevoke404WithAProbeAnswered2xxThatItDoesNotWork(t *testing.T) {
	t.Parallel()
	del := reply{404, "application/json", `{"message":"Not Found"}`}
	works := reply{200, "application/json", `{"credential_id":"cred_1","valid":true}`}
	for _, probe := range []reply{
		{200, "application/json", `{"valid":false}`},
		{200, "application/json", `{"revoked":"true"}`},
		{200, "application/json", `{"ok":false,"error":"unknown_credential"}`},
	} {
		_, err := revokeAgainstProbed(t, del, works, probe)
		var e *issuer.Error
		if !errors.As(err, &e) || e.Code != issuer.CodeStillWorks || !issuer.IsTransient(err) {
			t.Errorf("probe answered 200 %s: Revoke = %v, want a transient still_works", probe.body, err)
		}
	}
	// The same answer for every id is a stub's, as before.
	if _, err := revokeAgainstProbed(t, del, works, works); err != nil {
		t.Errorf("probe answered as cred_1: Revoke = %v, want revoked", err)
	}
}
