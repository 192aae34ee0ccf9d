package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A credential that a failed rotation kept because its push went
// unanswered is valid, and the app may run on it: the API names it in
// unconfirmed_credentials and the customer's dashboard says it is still
// valid, never its secret. A later rotation that succeeds once that push
// has settled makes it an old credential waiting for revocation, and it
// leaves both lists.
func TestUnconfirmedCredentialsAreShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	var v struct {
		Unconfirmed []store.UnconfirmedCredential `json:"unconfirmed_credentials"`
	}
	if r := f.api("GET", "/api/v1/instances/inst-1", ""); r.status != 200 || !strings.Contains(r.body, `"unconfirmed_credentials":[]`) {
		t.Fatalf("GET before any failure = %d %s; want unconfirmed_credentials as an empty list", r.status, r.body)
	}

	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret + "?cred=cred-1")}
	if err := f.st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	in, _ := f.st.Instance(ctx, "inst-1")
	if err := f.st.MarkPushAttempt(ctx, "rot-1", in.Target()); err != nil {
		t.Fatal(err)
	}
	if res, err := f.st.FailRotation(ctx, "inst-1", "rot-1", store.Failure{Code: "push:timeout", Cause: "no answer"}); err != nil || res.Unconfirmed != "cred-1" {
		t.Fatalf("FailRotation = %+v, %v; want cred-1 kept unconfirmed", res, err)
	}

	r := f.api("GET", "/api/v1/instances/inst-1", "")
	r.json(t, &v)
	if r.status != 200 || len(v.Unconfirmed) != 1 || v.Unconfirmed[0].CredentialID != "cred-1" ||
		v.Unconfirmed[0].RotationID != "rot-1" || !v.Unconfirmed[0].Since.Equal(f.clock.Now()) {
		t.Errorf("GET after the failure = %d %+v; want cred-1 of rot-1, kept since now", r.status, v.Unconfirmed)
	}
	session := f.login("inst-1")
	page := f.get("/dashboard", session).body
	if !strings.Contains(page, `id="unconfirmed"`) || !strings.Contains(page, "<code>cred-1</code>, kept since") {
		t.Errorf("the dashboard does not list cred-1 as still valid:\n%s", page)
	}
	// Revoking it now is refused, saying why: the app may run on it (I1).
	form := url.Values{"csrf_token": {f.csrf(session)}, "confirm": {"yes"}, "credential_id": {"cred-1"}}
	refused := f.postForm("/dashboard/revoke-now", form, session)
	if refused.status != http.StatusConflict || !strings.Contains(refused.body, "stays valid") || strings.Contains(refused.body, "revoked already") {
		t.Errorf("revoke-now of cred-1 = %d %s; want 409 saying it stays valid", refused.status, refused.body)
	}
	if c, err := f.st.Credential(ctx, "inst-1", "cred-1"); err != nil || c.State != store.CredentialUnconfirmed {
		t.Errorf("cred-1 after revoke-now: %+v (%v); want it kept unconfirmed", c.State, err)
	}
	for _, body := range []string{r.body, page} {
		if strings.Contains(body, pendingSecret) {
			t.Fatal("a page or answer holds the credential's secret")
		}
	}

	// Its push settles (an answer came, or the window passed): the next
	// promotion supersedes it. While unsettled it stays unconfirmed.
	if err := f.st.SettlePush(ctx, "rot-1", 1); err != nil {
		t.Fatal(err)
	}
	f.rotate("inst-1", "rot-2", "cred-2", time.Hour)
	r = f.api("GET", "/api/v1/instances/inst-1", "")
	if !strings.Contains(r.body, `"unconfirmed_credentials":[]`) || !strings.Contains(r.body, `"credential_id":"cred-1"`) {
		t.Errorf("GET after a later rotation = %s; want no unconfirmed credential, cred-1 waiting for revocation", r.body)
	}
	if page := f.get("/dashboard", session).body; strings.Contains(page, `id="unconfirmed"`) {
		t.Error("the dashboard still lists an unconfirmed credential after a later rotation superseded it")
	}
}

// The new credential of a rotation under way is named in the customer's
// timeline; asked to revoke it now, the dashboard refuses and says it is
// the one being given to the apps, not that it may be revoked already.
func TestRevokeNowOfThePendingCredentialSaysWhatItIs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret + "?cred=cred-1")}
	if err := f.st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	session := f.login("inst-1")
	form := url.Values{"csrf_token": {f.csrf(session)}, "confirm": {"yes"}, "credential_id": {"cred-1"}}
	r := f.postForm("/dashboard/revoke-now", form, session)
	if r.status != http.StatusConflict || !strings.Contains(r.body, "rotation in progress") || strings.Contains(r.body, "revoked already") {
		t.Errorf("revoke-now of the pending cred-1 = %d %s; want 409 naming the rotation in progress", r.status, r.body)
	}
	if c, err := f.st.Credential(ctx, "inst-1", "cred-1"); err != nil || c.State != store.CredentialPending {
		t.Errorf("cred-1 after revoke-now: %+v (%v); want it pending", c.State, err)
	}
}
