package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A request that changes something and carries a query string is refused
// (400, naming the parameter) and changes nothing: those routes read no
// parameter, so a client's ?dry_run=true or ?all=false would otherwise be
// dropped without a word and the request applied in full.
func TestMutatingRoutesRefuseQuery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	for _, tt := range []struct{ method, path, body string }{
		{http.MethodDelete, "/api/v1/instances/inst-1?dry_run=true", ""},
		{http.MethodPost, "/api/v1/rotations?dry_run=true", `{"instance_ids":["inst-1"]}`},
		{http.MethodPut, "/api/v1/instances/inst-1?dry_run=1", `{"api_version":"v3","config_vars":["MYADDON_URL"]}`},
	} {
		resp := f.api(tt.method, tt.path, tt.body)
		if resp.status != http.StatusBadRequest || !strings.Contains(resp.body, "query") {
			t.Errorf("%s %s: %d %s, want 400 about the query string", tt.method, tt.path, resp.status, resp.body)
		}
	}
	in, err := f.st.Instance(context.Background(), "inst-1")
	if err != nil || !in.DeprovisionedAt.IsZero() || in.InFlight != "" {
		t.Errorf("after the refused requests: %+v %v, want inst-1 live and not rotating", in, err)
	}
}
