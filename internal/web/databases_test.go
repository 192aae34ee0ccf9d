package web_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

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
