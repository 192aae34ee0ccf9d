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

// "Revoke the old credential now" sent again once the revocation is done (a
// double-click the worker beat, a second tab still showing the form) is
// answered as the first click was, back on the dashboard, which says the
// credential is revoked: the second answer is the one the browser shows,
// and it was a 409 "Nothing to revoke" page saying the credential "may
// have been revoked already".
func TestRevokeNowOfARevokedCredentialSaysItIsRevoked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	session := f.login("inst-1")
	form := url.Values{"csrf_token": {f.csrf(session)}, "credential_id": {"cred-0"}, "confirm": {"yes"}}
	if c := noticeOf(f.postForm("/dashboard/revoke-now", form, session)); c == nil || c.Value != "revoke" {
		t.Fatalf("revoke now: notice %v, want revoke", c)
	}
	if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
		t.Fatal(err)
	}
	again := f.postForm("/dashboard/revoke-now", form, session)
	c := noticeOf(again)
	if again.status != http.StatusSeeOther || c == nil {
		t.Fatalf("revoke now of the revoked cred-0: %d, notice %v; want 303 back to the dashboard: %s", again.status, c, again.body)
	}
	page := f.get("/dashboard", session, c)
	if page.status != http.StatusOK || !strings.Contains(page.body, "is revoked") || strings.Contains(page.body, "may have been") {
		t.Errorf("dashboard after revoke now of the revoked cred-0: %d; want it to say the credential is revoked: %s", page.status, page.body)
	}
	if cred, err := f.st.Credential(ctx, "inst-1", "cred-0"); err != nil || cred.State != store.CredentialRevoked {
		t.Errorf("cred-0: %+v (%v); want it revoked", cred, err)
	}
}
