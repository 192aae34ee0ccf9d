package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// "Revoke the old credential now" clicked on an old credential whose
// revocation the issuer refused for good (dead-lettered, waiting for an
// operator's `rekey revocations retry`) cannot revoke it: the page must say
// that an operator is needed, not that it is being revoked, and the click
// must leave the revocation where it was. It was answered "The old
// credential is being revoked now." while the status beside it said the
// revocation needs an operator, and the credential was put back among the
// revocations due while still in the dead-letter set: counted overdue,
// retried by every sweep, brought back by a customer where only an operator
// brings one back. The page now offers no "revoke now" for it, and a form
// drawn before it was set aside (a stale tab) is refused, saying why.
func TestRevokeNowOfADeadLetteredCredentialSaysAnOperatorIsNeeded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	f.clock.Advance(3 * time.Hour)
	dead, err := f.st.SetRevocationDead(ctx, store.Revocation{InstanceID: "inst-1", CredentialID: "cred-0",
		RevokeAt: f.clock.Now().Add(-time.Hour)}, store.DeadRefused)
	if err != nil || !dead {
		t.Fatalf("set dead: %v %v", dead, err)
	}
	session := f.login("inst-1")
	if page := f.get("/dashboard", session).body; strings.Contains(page, `name="credential_id" value="cred-0"`) ||
		!strings.Contains(page, "needs an operator") {
		t.Errorf("the dashboard offers to revoke the dead-lettered cred-0 now, or does not say it needs an operator:\n%s", page)
	}
	// A tab drawn before the revocation was set aside still holds the form.
	form := url.Values{"csrf_token": {f.csrf(session)}, "addon_id": {"inst-1"}, "credential_id": {"cred-0"}, "confirm": {"yes"}}
	res := f.postForm("/dashboard/revoke-now", form, session)
	body := res.body
	if c := noticeOf(res); c != nil && c.Value != "" {
		body = f.get("/dashboard", session, c).body
	}
	if strings.Contains(body, "being revoked now") || !strings.Contains(body, "needs an operator") {
		t.Errorf("revoke now of the dead-lettered cred-0: %d; want a page saying an operator is needed, not that it is being revoked: %s",
			res.status, body)
	}
	if res.status == http.StatusSeeOther {
		t.Errorf("revoke now of the dead-lettered cred-0 answered 303 back to the dashboard; want a page saying why nothing was done")
	}
	due, err := f.st.DueRevocations(ctx, f.clock.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range due {
		if r.CredentialID == "cred-0" {
			t.Errorf("the dead-lettered cred-0 is among the revocations due again after the customer's click: %+v", r)
		}
	}
	if still, err := f.st.IsRevocationDead(ctx, "inst-1", "cred-0"); err != nil || !still {
		t.Errorf("cred-0 dead-lettered after the click: %v (%v); want it left for the operator", still, err)
	}
}
