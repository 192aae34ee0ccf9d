package web_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A partner's DELETE that comes while its provisioning PUT's oauth_grant is
// being exchanged (Heroku deprovisions an add-on whose provisioning it gave
// up on) used to be undone when the exchange ended: the instance was
// registered, its tokens stored, and rotated for an add-on that no longer
// exists. Now the PUT is refused (409, the grant spent) and the DELETE
// stands, whether it found the instance (200) or not (404).
func TestADeleteDuringARegistrationStands(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		registered bool
		deleted    int
	}{
		{"a first registration", false, http.StatusNotFound},
		{"a registration again with a new code", true, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
				t.Fatal(err)
			}
			if tc.registered {
				if r := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(f.fake.GrantCode("inst-1"))); r.status != http.StatusOK {
					t.Fatalf("first PUT: %d %s", r.status, r.body)
				}
			}
			code := f.fake.GrantCode("inst-1")
			f.fake.Script(herokufake.OAuthToken, herokufake.Delay(time.Second))
			var wg sync.WaitGroup
			var put reply
			wg.Go(func() { put = f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code)) })
			time.Sleep(300 * time.Millisecond) // the exchange is under way
			if del := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); del.status != tc.deleted {
				t.Fatalf("DELETE during the exchange: %d %s, want %d", del.status, del.body, tc.deleted)
			}
			wg.Wait()
			if put.status != http.StatusConflict {
				t.Errorf("PUT whose registration began before the DELETE: %d %s, want 409", put.status, put.body)
			}
			f.wantDeprovisioned(t, "inst-1", tc.registered)
		})
	}
}

// A provisioning PUT whose client gave up on a slow exchange, then the
// add-on's DELETE, answered 404 ("not registered": the partner takes its
// deprovisioning as done): the exchange, which goes on detached so that a
// spent code is not lost, no longer registers the instance when it ends.
func TestAnAbandonedRegistrationDoesNotOutliveItsDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	f.fake.Script(herokufake.OAuthToken, herokufake.Delay(time.Second))
	if _, err := f.putWithTimeout("/api/v1/instances/inst-1", grantBody(f.fake.GrantCode("inst-1")), 300*time.Millisecond); err == nil {
		t.Fatal("the PUT did not time out")
	}
	if del := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); del.status != http.StatusNotFound {
		t.Fatalf("DELETE: %d %s, want 404", del.status, del.body)
	}
	// The exchange ends about 0.7 s later, and the registration after it.
	time.Sleep(2 * time.Second)
	f.wantDeprovisioned(t, "inst-1", false)
}

// The same PUT sent again after that DELETE (the partner's client retries
// it, or Heroku provisions the add-on again with the code it still has)
// registers the instance: it waits for the first one's exchange, and takes
// the tokens that one bought and could not register with, since Heroku
// refuses a code it exchanged already.
func TestTheSamePutAfterTheDeleteRegisters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	f.fake.Script(herokufake.OAuthToken, herokufake.Delay(time.Second))
	code := f.fake.GrantCode("inst-1")
	if _, err := f.putWithTimeout("/api/v1/instances/inst-1", grantBody(code), 300*time.Millisecond); err == nil {
		t.Fatal("the PUT did not time out")
	}
	if del := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); del.status != http.StatusNotFound {
		t.Fatalf("DELETE: %d %s, want 404", del.status, del.body)
	}
	if put := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code)); put.status != http.StatusOK {
		t.Fatalf("the same PUT after the DELETE: %d %s, want 200", put.status, put.body)
	}
	if n := len(f.fake.Calls(herokufake.OAuthToken)); n != 1 {
		t.Errorf("Heroku was asked to exchange the code %d times, want once", n)
	}
	if tok, err := f.st.LoadToken(context.Background(), "inst-1"); err != nil || tok.RefreshToken.IsZero() {
		t.Errorf("no OAuth tokens stored for the registered instance: %v", err)
	}
	if n := f.r.Client.Exists(context.Background(), "rekey:grant_tokens:inst-1").Val(); n != 0 {
		t.Error("the exchanged tokens are still kept aside after the registration took them")
	}
}

// wantDeprovisioned checks that instance id is deprovisioned (registered
// says it was registered before) or not registered, and that no OAuth
// token of it is stored.
func (f *fixture) wantDeprovisioned(t *testing.T, id string, registered bool) {
	t.Helper()
	get := f.api(http.MethodGet, "/api/v1/instances/"+id, "")
	if !registered {
		if get.status != http.StatusNotFound {
			t.Errorf("GET after the DELETE: %d %s, want 404", get.status, get.body)
		}
	} else {
		var v struct {
			DeprovisionedAt string `json:"deprovisioned_at"`
		}
		get.json(t, &v)
		if v.DeprovisionedAt == "" {
			t.Errorf("GET after the DELETE: live again: %s", get.body)
		}
	}
	if tok, err := f.st.LoadToken(context.Background(), id); err == nil && !tok.RefreshToken.IsZero() {
		t.Error("the add-on's OAuth tokens are stored after its DELETE was answered")
	}
}

// A DELETE by mistake, then the same PUT again (or a provisioning retried
// late, queued behind the DELETE) registers the instance again. What the
// deprovisioning set aside for revocation because the add-on's config had
// left its apps is kept unrevoked again, since the app may hold it (I1):
// a credential whose push Heroku answered 503, and the credential current
// before the DELETE when the PUT names another (rekey's own rotation the
// partner's replayed PUT knows nothing of), which was left current of no
// instance, never revoked. Both wait, unconfirmed, for the next rotation,
// which revokes them after its grace.
func TestRegisteredAgainKeepsWhatTheAppMayHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"c0",` +
		`"oauth":{"refresh_token":"rt-1","access_token":"at-1","expires_at":"2030-01-02T15:04:05Z"}}`
	if r := f.api(http.MethodPut, "/api/v1/instances/inst-1", body); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	f.rotate("inst-1", "rot-1", "c1", 2*time.Hour) // c1 current, c0 previous
	// A rotation to c2 whose push Heroku answered 503: c2 kept unconfirmed.
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-2", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret + "?cred=c2")}
	if err := f.st.SavePending(ctx, "inst-1", "rot-2", "c2", cfg); err != nil {
		t.Fatal(err)
	}
	in, _ := f.st.Instance(ctx, "inst-1")
	if err := f.st.MarkPushAttempt(ctx, "rot-2", in.Target()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, "inst-1", "rot-2", "push:heroku_503", "Heroku answered 503"); err != nil {
		t.Fatal(err)
	}
	if del := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); del.status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", del.status, del.body)
	}
	if c, _ := f.st.Credential(ctx, "inst-1", "c2"); c.State != store.CredentialDiscarded {
		t.Fatalf("c2 after the DELETE: %s, want discarded, revoked after the grace", c.State)
	}
	if put := f.api(http.MethodPut, "/api/v1/instances/inst-1", body); put.status != http.StatusOK {
		t.Fatalf("the PUT again: %d %s", put.status, put.body)
	}
	for _, id := range []string{"c1", "c2"} {
		c, err := f.st.Credential(ctx, "inst-1", id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != store.CredentialUnconfirmed || !c.RevokeAt.IsZero() {
			t.Errorf("%s after the PUT again: %s, revoke at %v; want unconfirmed, no revocation", id, c.State, c.RevokeAt)
		}
		if _, err := f.r.Client.ZScore(ctx, "rekey:revoke_due", "inst-1/"+id).Result(); err == nil {
			t.Errorf("%s is due for revocation while the app may hold it (I1)", id)
		}
	}
	if in, _ := f.st.Instance(ctx, "inst-1"); in.CurrentCredential != "c0" || in.Deprovisioned() {
		t.Fatalf("instance after the PUT again: current %s, deprovisioned %v; want c0, live", in.CurrentCredential, in.Deprovisioned())
	}
	// The next rotation puts its credential in the app's config: then c1
	// cannot be there, and is revoked after its grace; so is c2 after the
	// first rotation once its unanswered push is an hour old (it could
	// still land before).
	f.rotate("inst-1", "rot-3", "c3", 2*time.Hour)
	f.clock.Advance(store.UnansweredPushWindow)
	f.rotate("inst-1", "rot-4", "c4", 2*time.Hour)
	for _, id := range []string{"c0", "c1", "c2", "c3"} {
		if c, _ := f.st.Credential(ctx, "inst-1", id); c.State != store.CredentialPrevious || c.RevokeAt.IsZero() {
			t.Errorf("%s after the next rotations: %s, revoke at %v; want previous, revoked after the grace", id, c.State, c.RevokeAt)
		}
	}
}
