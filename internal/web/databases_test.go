package web_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/store"
)

// A registration naming the database, or the owner role, of another live
// instance on the same server (a partner's copy-paste, a provisioning
// bug) is refused with nothing stored: the PostgreSQL issuer mints every
// credential of an instance as a member of its owner role, for its
// database, so each instance's credentials would open the other's data.
// The instance itself registers again with its own location; once the
// other is deprovisioned, or moved, its location is free.
func TestARegistrationOnAnotherLiveInstancesDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	put := func(id, name, owner string) reply {
		t.Helper()
		return f.api(http.MethodPut, "/api/v1/instances/"+id, `{"api_version":"v3","config_vars":["MYADDON_URL"],`+
			`"oauth":{"access_token":"a-tok","refresh_token":"r-tok","expires_at":"2030-01-01T00:00:00Z"},`+
			`"database":{"server":"main","name":"`+name+`","owner_role":"`+owner+`"}}`)
	}
	if r := put("inst-a", "d8f3a1", "d8f3a1_owner"); r.status != http.StatusOK {
		t.Fatalf("PUT inst-a = %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ name, owner, what string }{
		{"d8f3a1", "d8f3a1_owner", "owner role"},
		{"other", "d8f3a1_owner", "owner role"},
		{"d8f3a1", "other_owner", "database"},
	} {
		r := put("inst-b", tc.name, tc.owner)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "the "+tc.what+" is that of live instance inst-a") {
			t.Errorf("PUT inst-b on %s/%s = %d %s; want 422 naming inst-a's %s", tc.name, tc.owner, r.status, r.body, tc.what)
		}
		if _, err := f.st.Instance(ctx, "inst-b"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("inst-b after the refusal: %v, want it not registered", err)
		}
	}
	if r := put("inst-a", "d8f3a1", "d8f3a1_owner"); r.status != http.StatusOK {
		t.Errorf("PUT inst-a again with its own location = %d %s", r.status, r.body)
	}
	// inst-a moves: its old location is free, its new one is not.
	if r := put("inst-a", "e9a0b2", "e9a0b2_owner"); r.status != http.StatusOK {
		t.Fatalf("PUT inst-a on a new database = %d %s", r.status, r.body)
	}
	if r := put("inst-b", "d8f3a1", "d8f3a1_owner"); r.status != http.StatusOK {
		t.Errorf("PUT inst-b on inst-a's old database = %d %s, want 200", r.status, r.body)
	}
	if r := put("inst-c", "e9a0b2", "e9a0b2_owner"); r.status != http.StatusUnprocessableEntity {
		t.Errorf("PUT inst-c on inst-a's new database = %d, want 422", r.status)
	}
	// Deprovisioned, inst-a frees it.
	if r := f.api(http.MethodDelete, "/api/v1/instances/inst-a", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE inst-a = %d %s", r.status, r.body)
	}
	if r := put("inst-c", "e9a0b2", "e9a0b2_owner"); r.status != http.StatusOK {
		t.Errorf("PUT inst-c on the database of deprovisioned inst-a = %d %s, want 200", r.status, r.body)
	}
	if n, _ := f.r.Client.HLen(ctx, "rekey:databases").Result(); n != 4 {
		t.Errorf("index of live databases holds %d fields, want 4 (inst-b's and inst-c's)", n)
	}
}

// An instance registered again without its database location goes on with
// the one it kept: that location counts as its own again, so no other
// instance registers it; and if another live instance took it meanwhile
// (its DELETE had freed it), the registration is refused, nothing stored.
func TestARegistrationAgainKeepsItsDatabaseOnlyIfFree(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const tokens = `"oauth":{"access_token":"a-tok","refresh_token":"r-tok","expires_at":"2030-01-01T00:00:00Z"}`
	put := func(id, database string) reply {
		t.Helper()
		body := `{"api_version":"v3","config_vars":["MYADDON_URL"],` + tokens
		if database != "" {
			body += `,"database":{"server":"main","name":"` + database + `","owner_role":"` + database + `_owner"}`
		}
		return f.api(http.MethodPut, "/api/v1/instances/"+id, body+"}")
	}
	del := func(id string) {
		t.Helper()
		if r := f.api(http.MethodDelete, "/api/v1/instances/"+id, ""); r.status != http.StatusOK {
			t.Fatalf("DELETE %s = %d %s", id, r.status, r.body)
		}
	}
	for _, id := range []string{"inst-a", "inst-c"} {
		if r := put(id, "db_"+id); r.status != http.StatusOK {
			t.Fatalf("PUT %s = %d %s", id, r.status, r.body)
		}
		del(id)
	}
	// inst-a comes back without naming its location: it is its own again.
	if r := put("inst-a", ""); r.status != http.StatusOK {
		t.Fatalf("PUT inst-a again = %d %s", r.status, r.body)
	}
	if r := put("inst-b", "db_inst-a"); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "inst-a") {
		t.Errorf("PUT inst-b on the location inst-a kept = %d %s, want 422 naming inst-a", r.status, r.body)
	}
	// inst-c's location went to inst-d while inst-c was deprovisioned.
	if r := put("inst-d", "db_inst-c"); r.status != http.StatusOK {
		t.Fatalf("PUT inst-d on deprovisioned inst-c's location = %d %s", r.status, r.body)
	}
	// Refused before its oauth_grant is exchanged: Heroku takes a code once.
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-c", App: "app-inst-c", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	exchanges := len(f.fake.Calls(herokufake.OAuthToken))
	r := f.api(http.MethodPut, "/api/v1/instances/inst-c",
		`{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"`+f.fake.GrantCode("inst-c")+`"}}`)
	in, err := f.st.Instance(ctx, "inst-c")
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "inst-d") || err != nil || !in.Deprovisioned() {
		t.Errorf("PUT inst-c again without a location = %d %s (deprovisioned %v, %v); want 422 naming inst-d, inst-c left deprovisioned",
			r.status, r.body, in.Deprovisioned(), err)
	}
	if n := len(f.fake.Calls(herokufake.OAuthToken)) - exchanges; n != 0 {
		t.Errorf("the refused registration exchanged its oauth_grant (%d calls), want it refused before", n)
	}
	if r := put("inst-c", "db_inst-c2"); r.status != http.StatusOK {
		t.Errorf("PUT inst-c again on a location of its own = %d %s, want 200", r.status, r.body)
	}
}

// A deprovisioned instance whose kept location cannot be read (damaged, or
// written by something else) registers again without one, as the
// registration's own script reads it: as none.
func TestARegistrationAgainOverAnUnreadableKeptLocationRegisters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const body = `{"api_version":"v3","config_vars":["MYADDON_URL"],` +
		`"oauth":{"access_token":"a-tok","refresh_token":"r-tok","expires_at":"2030-01-01T00:00:00Z"}}`
	for _, raw := range []string{`not json`, `{"server":"main","name":7,"owner_role":"o"}`} {
		f := newFixture(t)
		if r := f.api(http.MethodPut, "/api/v1/instances/inst-a", body); r.status != http.StatusOK {
			t.Fatalf("PUT = %d %s", r.status, r.body)
		}
		if r := f.api(http.MethodDelete, "/api/v1/instances/inst-a", ""); r.status != http.StatusOK {
			t.Fatalf("DELETE = %d %s", r.status, r.body)
		}
		if err := f.r.Client.Set(ctx, "rekey:database:inst-a", raw, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if r := f.api(http.MethodPut, "/api/v1/instances/inst-a", body); r.status != http.StatusOK {
			t.Errorf("PUT again over the kept location %q = %d %s, want 200", raw, r.status, r.body)
		}
	}
}
