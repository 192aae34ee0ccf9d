package web_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
)

// A V1 instance registered with the heroku_id of another live V1 instance
// and a config var of the same name (an import file's line copied and
// edited by hand, a partner's script reading the wrong column) is refused
// with 422 naming the other instance and the var, and nothing is stored:
// Heroku's V1 calls name the app alone, so its rotations would have put
// its credentials into the other customer's config. The heroku_id is
// compared without case. An instance of the app that sets vars of other
// names registers. A live instance
// registered again under another's heroku_id is refused too, and keeps its
// own. Once the first is deprovisioned, or registered under another
// heroku_id, its old one is free.
func TestV1HerokuIDOfAnotherLiveInstanceIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	v1 := func(app string, vars ...string) string {
		if len(vars) == 0 {
			vars = []string{"MYADDON_URL"}
		}
		return `{"api_version":"v1","heroku_id":"` + app + `","config_vars":["` + strings.Join(vars, `","`) + `"]}`
	}
	put := func(id, body string) reply {
		t.Helper()
		return f.api(http.MethodPut, "/api/v1/instances/"+id, body)
	}
	if resp := put("inst-a", v1("app1@heroku.com")); resp.status >= 300 {
		t.Fatalf("PUT inst-a: %d %s", resp.status, resp.body)
	}
	if resp := put("inst-a", v1("app1@heroku.com")); resp.status >= 300 {
		t.Fatalf("PUT inst-a again, unchanged: %d %s", resp.status, resp.body)
	}
	for _, body := range []string{v1("app1@heroku.com"), v1("APP1@Heroku.com", "MYADDON_HOST", "MYADDON_URL")} {
		resp := put("inst-b", body)
		if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, "inst-a") ||
			!strings.Contains(resp.body, "heroku_id") || !strings.Contains(resp.body, "MYADDON_URL") {
			t.Errorf("PUT inst-b %s: %d %s, want 422 naming heroku_id, inst-a and MYADDON_URL", body, resp.status, resp.body)
		}
		if _, err := f.st.Instance(ctx, "inst-b"); err == nil {
			t.Fatalf("inst-b was stored under inst-a's heroku_id by %s", body)
		}
	}
	// Another instance of app1, setting other vars.
	if resp := put("inst-blue", v1("app1@heroku.com", "MYADDON_BLUE_URL")); resp.status >= 300 {
		t.Errorf("PUT another instance of app1 with vars of its own: %d %s, want it registered", resp.status, resp.body)
	}
	if resp := put("inst-b", v1("app2@heroku.com")); resp.status >= 300 {
		t.Fatalf("PUT inst-b: %d %s", resp.status, resp.body)
	}
	if resp := put("inst-b", v1("app1@heroku.com")); resp.status != http.StatusUnprocessableEntity {
		t.Errorf("PUT live inst-b again with inst-a's heroku_id: %d %s, want 422", resp.status, resp.body)
	}
	if in, err := f.st.Instance(ctx, "inst-b"); err != nil || in.HerokuID != "app2@heroku.com" {
		t.Errorf("inst-b after the refusal: %+v, %v; want its own heroku_id kept", in, err)
	}
	// A V3 instance's heroku_id addresses nothing: it does not count.
	if resp := put("inst-c", `{"api_version":"v3","heroku_id":"app1@heroku.com","config_vars":["MYADDON_URL"],`+
		`"oauth":{"access_token":"a-token-1","refresh_token":"r-token-1","expires_at":"2030-01-01T00:00:00Z"}}`); resp.status >= 300 {
		t.Errorf("PUT a v3 inst-c naming app1's heroku_id: %d %s, want it registered", resp.status, resp.body)
	}

	// inst-a moves to app3: app1 is free for inst-b.
	if resp := put("inst-a", v1("app3@heroku.com")); resp.status >= 300 {
		t.Fatalf("PUT inst-a to app3: %d %s", resp.status, resp.body)
	}
	if resp := put("inst-b", v1("app1@heroku.com")); resp.status >= 300 {
		t.Errorf("PUT inst-b to app1 once inst-a left it: %d %s", resp.status, resp.body)
	}
	// Deprovisioned, inst-a frees app3.
	if resp := f.api(http.MethodDelete, "/api/v1/instances/inst-a", ""); resp.status >= 300 {
		t.Fatalf("DELETE inst-a: %d %s", resp.status, resp.body)
	}
	if resp := put("inst-d", v1("app3@heroku.com")); resp.status >= 300 {
		t.Errorf("PUT inst-d with the heroku_id of deprovisioned inst-a: %d %s", resp.status, resp.body)
	}
	err := f.st.PutInstance(ctx, store.Registration{ID: "inst-e", APIVersion: store.APIv1, HerokuID: "app3@heroku.com",
		ConfigVars: []string{"MYADDON_URL"}})
	if taken, ok := errors.AsType[*store.HerokuIDTakenError](err); !ok || taken.Holder != "inst-d" || taken.ConfigVar != "MYADDON_URL" {
		t.Errorf("store.PutInstance of inst-e with inst-d's heroku_id: %v, want it refused naming inst-d and MYADDON_URL", err)
	}
}
