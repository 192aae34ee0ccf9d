package web_test

import (
	"net/http"
	"strings"
	"testing"
)

// A list parameter given twice is refused, naming it, rather than answered
// with the first value: readers disagree on which one counts (Go's takes
// the first, many frameworks the last), and a client that meant
// running=false, or a limit of 500, would read another list as its own.
func TestListRefusesRepeatedParameter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	for _, path := range []string{
		"/api/v1/batches?running=true&running=false",
		"/api/v1/batches?limit=5&limit=500",
		"/api/v1/instances?limit=1&limit=1000",
		"/api/v1/instances?after=inst-1&after=",
	} {
		resp := f.api(http.MethodGet, path, "")
		name := path[strings.Index(path, "?")+1 : strings.Index(path, "=")]
		if resp.status != http.StatusBadRequest || !strings.Contains(resp.body, `\"`+name+`\"`) && !strings.Contains(resp.body, `"`+name+`"`) {
			t.Errorf("GET %s: %d %s, want 400 naming %q", path, resp.status, resp.body, name)
		}
	}
}
