package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/tasks"
)

// idList is a rotation request body naming n ids made from prefix.
func idList(prefix string, n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%06d", prefix, i)
	}
	b, _ := json.Marshal(map[string]any{"instance_ids": ids})
	return string(b)
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.register("inst-2", "cred-0")
	if resp := f.api(http.MethodDelete, "/api/v1/instances/inst-2", ""); resp.status != http.StatusOK {
		t.Fatalf("deprovision: got status %d", resp.status)
	}
	const reg = `"api_version":"v3","config_vars":["MYADDON_URL"]`
	tenMB := `{"api_version":"` + strings.Repeat("v", 10<<20) + `"}`
	tests := []struct {
		name, method, path, body string
		want                     int
		wantIn                   string // a word the error must contain
	}{
		{"malformed JSON", "PUT", "/api/v1/instances/inst-9", `{"api_version":`, 400, "JSON"},
		{"not an object", "PUT", "/api/v1/instances/inst-9", `["v3"]`, 400, "object"},
		{"empty body", "PUT", "/api/v1/instances/inst-9", ``, 400, "empty"},
		{"two objects", "PUT", "/api/v1/instances/inst-9", `{` + reg + `}{}`, 400, "one JSON object"},
		{"config_vars not a list", "PUT", "/api/v1/instances/inst-9", `{"api_version":"v3","config_vars":"MYADDON_URL"}`, 400, "config_vars"},
		{"log_input_url not a string", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth":{"refresh_token":"r"},"log_input_url":5}`, 400, "log_input_url"},
		{"private_space not a bool", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"private_space":"yes"}`, 400, "private_space"},
		{"access token not a string", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth":{"access_token":5,"refresh_token":"r"}}`, 400, "oauth.access_token"},
		{"grant code not a string", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth_grant":{"code":{}}}`, 400, "oauth_grant.code"},
		{"expires_at not a time", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth":{"refresh_token":"r","expires_at":"tomorrow"}}`, 400, "expires_at"},
		{"unknown field", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"colour":"blue"}`, 400, "colour"},
		{"body id differs from path", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"id":"inst-8"}`, 400, "id"},
		{"bad api_version", "PUT", "/api/v1/instances/inst-9", `{"api_version":"v2","config_vars":["MYADDON_URL"]}`, 422, "api_version"},
		{"no config vars", "PUT", "/api/v1/instances/inst-9", `{"api_version":"v3"}`, 422, "config_vars"},
		{"log_input_url over http to another host", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth":{"refresh_token":"r"},"log_input_url":"http://t:tok@169.254.169.254/logs"}`, 422, "absolute https URL"},
		{"log_input_url not http", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth":{"refresh_token":"r"},"log_input_url":"gopher://x/logs"}`, 422, "absolute https URL"},
		{"a config var twice", "PUT", "/api/v1/instances/inst-9", `{"api_version":"v3","config_vars":["MYADDON_URL","MYADDON_URL"]}`, 422, "named twice"},
		{"too many config vars", "PUT", "/api/v1/instances/inst-9", `{"api_version":"v3","config_vars":["` +
			strings.TrimSuffix(strings.Repeat(`V_X","`, 33), `","`) + `"]}`, 422, "at most 32"},
		{"bad grace", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"grace":"soon"}`, 422, "grace"},
		{"grace of zero", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"grace":"0s","oauth":{"refresh_token":"r"}}`, 422, "grace"},
		{"grace below the floor", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"grace":"1ms","oauth":{"refresh_token":"r"}}`, 422, "floor of 10m0s (REKEY_MIN_GRACE"},
		{"grace above the ceiling", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"grace":"2000h","oauth":{"refresh_token":"r"}}`, 422, "ceiling of 168h0m0s (REKEY_MAX_GRACE"},
		{"v3 first registration without oauth", "PUT", "/api/v1/instances/inst-9", `{` + reg + `}`, 422, "oauth_grant"},
		{"grant and tokens", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth_grant":{"code":"c"},"oauth":{"refresh_token":"r"}}`, 422, "oauth"},
		{"10 MB registration", "PUT", "/api/v1/instances/inst-9", tenMB, 413, "larger"},
		{"dot-dot segment", "PUT", "/api/v1/instances/../inst-9", `{` + reg + `}`, 400, "path"},
		{"encoded dot-dot", "PUT", "/api/v1/instances/%2e%2e", `{` + reg + `}`, 400, "path"},
		{"encoded slash", "PUT", "/api/v1/instances/..%2fx", `{` + reg + `}`, 400, "path"},
		{"shell characters", "PUT", "/api/v1/instances/a;rm%20-rf", `{` + reg + `}`, 400, "addon_id"},
		{"id of dots", "GET", "/api/v1/instances/...", ``, 400, "addon_id"},
		{"id too long", "PUT", "/api/v1/instances/" + strings.Repeat("a", 129), `{` + reg + `}`, 400, "addon_id"},
		{"unknown instance", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1","inst-404"]}`, 422, "inst-404"},
		{"deprovisioned instance", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1","inst-2"]}`, 422, "deprovisioned"},
		{"ids and all", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"all":true}`, 400, "not both"},
		{"no ids", "POST", "/api/v1/rotations", `{"instance_ids":[]}`, 400, "instance_ids"},
		{"ids not a list", "POST", "/api/v1/rotations", `{"instance_ids":"inst-1"}`, 400, "instance_ids"},
		{"id with path characters", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1","../x"]}`, 400, "../x"},
		{"id with shell characters", "POST", "/api/v1/rotations", `{"instance_ids":["a;rm -rf /"]}`, 400, "instance_ids"},
		{"bad rotation grace", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"-1h"}`, 422, "grace"},
		{"rotation grace of zero", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"0s"}`, 422, "grace"},
		{"rotation grace not a duration", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"soon"}`, 422, "grace"},
		{"rotation grace below the floor", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"1ms"}`, 422, "floor of 10m0s (REKEY_MIN_GRACE"},
		// A day in seconds, as a tasks/ payload may give it: the API takes
		// a Go duration only, and says so rather than read a number.
		{"rotation grace a number of seconds", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":86400}`, 400, `"grace" must be a string`},
		{"rotation grace without a unit", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"86400"}`, 422, `not a positive Go duration such as "2h"`},
		// Days, as people count a grace: the answer gives it in hours.
		{"rotation grace in days", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"2d"}`, 422, `Go durations have no days: 2d is 48h`},
		{"registration grace in days", "PUT", "/api/v1/instances/inst-9", `{` + reg + `,"oauth":{"refresh_token":"r"},"grace":"3d"}`, 422, `Go durations have no days: 3d is 72h`},
		{"rotation grace in nanoseconds", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"86400ns"}`, 422, "floor of 10m0s (REKEY_MIN_GRACE"},
		{"fleet grace below the floor", "POST", "/api/v1/rotations", `{"all":true,"grace":"9m59s"}`, 422, "floor"},
		{"rotation grace above the ceiling", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"2562047h"}`, 422, "ceiling of 168h0m0s (REKEY_MAX_GRACE"},
		{"fleet grace above the ceiling", "POST", "/api/v1/rotations", `{"all":true,"grace":"169h"}`, 422, "ceiling"},
		{"all false", "POST", "/api/v1/rotations", `{"all":false}`, 400, "instance_ids"},
		{"reason forging a line", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"ok\n2026-01-01T00:00:00Z  revoked"}`, 400, "reason"},
		{"reason with a terminal escape", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"\u001b[2Jcleared"}`, 400, "reason"},
		{"reason with a bidi override", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"\u202egnirotinom"}`, 400, "reason"},
		// The dashboard would tell the customer they asked; the store would
		// count a failure towards the schedule's quarantine.
		{"reason the dashboard gives", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"Customer request "}`, 400, "customer's dashboard"},
		{"reason the schedule gives", "POST", "/api/v1/rotations", `{"all":true,"reason":"scheduled"}`, 400, "rotation schedule"},
		{"10 MB rotation request", "POST", "/api/v1/rotations", `{"instance_ids":["` + strings.Repeat("a", 10<<20) + `"]}`, 413, "larger"},
		{"100,001 ids", "POST", "/api/v1/rotations", idList("inst", 100_001), 413, "at most 100000"},
		{"100,000 unknown ids", "POST", "/api/v1/rotations", idList("ghost", 100_000), 422, "100000 unknown"},
		{"bad batch id", "GET", "/api/v1/batches/a;b", ``, 400, "batch_id"},
		{"batch list with an unknown parameter", "GET", "/api/v1/batches?runing=true", ``, 400, `"runing"`},
		{"batch list with ';' separators", "GET", "/api/v1/batches?running=true;limit=5", ``, 400, "query string"},
		{"batch list with a bad escape", "GET", "/api/v1/batches?before=%zz", ``, 400, "query string"},
		{"batch list running maybe", "GET", "/api/v1/batches?running=maybe", ``, 400, "running"},
		// Without a value, running is no filter the client can have meant
		// as "every batch".
		{"batch list running without a value", "GET", "/api/v1/batches?running", ``, 400, "running"},
		{"batch list running empty", "GET", "/api/v1/batches?running=", ``, 400, "running"},
		{"batch list limit 0", "GET", "/api/v1/batches?limit=0", ``, 400, "limit"},
		{"batch list limit not a number", "GET", "/api/v1/batches?limit=ten", ``, 400, "limit"},
		{"batch list limit too large", "GET", "/api/v1/batches?limit=1001", ``, 400, "1000"},
		{"batch list before an unknown batch", "GET", "/api/v1/batches?before=bat_nope", ``, 404, "bat_nope"},
	}
	before := redistest.Dump(t, f.r)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.api(tt.method, tt.path, tt.body)
			var e struct{ Error string }
			resp.json(t, &e)
			if resp.status != tt.want || !strings.Contains(e.Error, tt.wantIn) {
				t.Errorf("got %d %q, want %d naming %q", resp.status, e.Error, tt.want, tt.wantIn)
			}
		})
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Errorf("refused requests changed Redis:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, q := range []string{tasks.QueueInteractive, tasks.QueueDefault, tasks.QueueBulk} {
		if ids := f.queued(q); len(ids) > 0 {
			t.Errorf("got %v enqueued on %s by refused requests, want nothing", ids, q)
		}
	}
	if n, _ := f.st.CountInstances(context.Background()); n != 1 {
		t.Errorf("got %d live instances, want 1", n)
	}
}

// TestHundredThousandIDsAreHandledInFull rotates the largest list one
// request may name: every instance gets a rotation, in one batch.
func TestHundredThousandIDsAreHandledInFull(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 100,000 instances")
	}
	t.Parallel()
	f := newFixture(t)
	const n = 100_000
	body := idList("inst", n)
	var ids struct {
		InstanceIDs []string `json:"instance_ids"`
	}
	_ = json.Unmarshal([]byte(body), &ids)
	f.registerMany(ids.InstanceIDs)
	// Enqueueing 100,000 takes seconds (docs/benchmarks.md, "Enqueue"), but more than a
	// minute with the race detector on a machine busy with other packages'
	// tests: this test is about every id being handled, not how fast.
	f.http.Timeout = 5 * time.Minute
	var got batchJSON
	resp := f.api(http.MethodPost, "/api/v1/rotations", body)
	resp.json(t, &got)
	if resp.status != http.StatusAccepted || got.Enqueued != n {
		t.Fatalf("got %d %s, want 202 with %d enqueued", resp.status, resp.body, n)
	}
	var batch batchJSON
	f.api(http.MethodGet, "/api/v1/batches/"+got.BatchID, "").json(t, &batch)
	if batch.Total != n || batch.InFlight != n {
		t.Errorf("got batch %+v, want %d in flight", batch, n)
	}
}

// TestRefusedValuesAreClippedInErrors: an error sentence quotes at most a
// short piece of the client's value, however long the value, so that a
// refused request cannot make rekey answer (or log) megabytes.
func TestRefusedValuesAreClippedInErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	const reg = `"api_version":"v3","config_vars":["MYADDON_URL"],"oauth":{"refresh_token":"r"}`
	long := strings.Repeat("x", 200_000)
	tests := []struct{ name, method, path, body string }{
		{"grace", "PUT", "/api/v1/instances/inst-1", `{` + reg + `,"grace":"` + long + `"}`},
		{"unknown field", "PUT", "/api/v1/instances/inst-1", `{` + reg + `,"` + long + `":1}`},
		{"config var name", "PUT", "/api/v1/instances/inst-1", `{"api_version":"v3","config_vars":["` + long + `"]}`},
		{"api_version", "PUT", "/api/v1/instances/inst-1", `{"api_version":"` + long + `","config_vars":["MYADDON_URL"]}`},
		{"current_credential_id", "PUT", "/api/v1/instances/inst-1", `{` + reg + `,"current_credential_id":"` + long + `"}`},
		{"body id", "PUT", "/api/v1/instances/inst-1", `{` + reg + `,"id":"` + long + `"}`},
		{"rotation grace", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"` + long + `"}`},
		{"batch list before", "GET", "/api/v1/batches?before=" + long, ``},
		{"batch list limit", "GET", "/api/v1/batches?limit=" + long, ``},
		{"batch list running", "GET", "/api/v1/batches?running=" + long, ``},
		{"batch list parameter", "GET", "/api/v1/batches?" + long + "=1", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.api(tt.method, tt.path, tt.body)
			var e struct{ Error string }
			resp.json(t, &e)
			if resp.status < 400 || resp.status > 499 || e.Error == "" || len(resp.body) > 1000 {
				t.Errorf("%d-byte value: got %d with a %d-byte body %.200q; want a 4xx quoting at most a clipped value",
					len(long), resp.status, len(resp.body), resp.body)
			}
		})
	}
}
