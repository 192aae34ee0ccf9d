package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/tasks"
)

// A body whose meaning depends on which of two keys its reader keeps, or
// on whether its reader compares keys without case as encoding/json does,
// is refused (400, naming the key) and changes nothing: {"all":false,
// "ALL":true} reads as false to every other JSON reader on its way, and
// must not rotate the fleet.
func TestRepeatedOrCaseVariantKeysAreRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.register("inst-2", "cred-0")
	f.register("inst-3", "cred-0")
	const reg = `"api_version":"v3","config_vars":["MYADDON_URL"]`
	tests := []struct {
		name, method, path, body string
		wantIn                   string // the key the error must name
	}{
		{"all false then ALL true", "POST", "/api/v1/rotations", `{"all":false,"ALL":true}`, `"ALL"`},
		{"All alone", "POST", "/api/v1/rotations", `{"All":true}`, `"All"`},
		{"instance_ids twice", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"instance_ids":["inst-2","inst-3"]}`, `"instance_ids"`},
		{"grace twice", "POST", "/api/v1/rotations", `{"instance_ids":["inst-1"],"grace":"2h","grace":"20h"}`, `"grace"`},
		{"api_version twice", "PUT", "/api/v1/instances/inst-1", `{` + reg + `,"api_version":"v1"}`, `"api_version"`},
		{"Config_Vars", "PUT", "/api/v1/instances/inst-1", `{"api_version":"v3","Config_Vars":["MYADDON_URL"]}`, `"Config_Vars"`},
		{"nested key twice", "PUT", "/api/v1/instances/inst-1", `{` + reg + `,"oauth":{"refresh_token":"r","refresh_token":"s"}}`, `"oauth.refresh_token"`},
		{"nested key in another case", "PUT", "/api/v1/instances/inst-1", `{` + reg + `,"oauth":{"refresh_token":"r","Refresh_Token":"s"}}`, `"oauth.Refresh_Token"`},
	}
	before := redistest.Dump(t, f.r)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.api(tt.method, tt.path, tt.body)
			var e struct{ Error string }
			resp.json(t, &e)
			if resp.status != http.StatusBadRequest || !strings.Contains(e.Error, tt.wantIn) {
				t.Errorf("%s %s %s: got %d %q, want 400 naming %s", tt.method, tt.path, tt.body, resp.status, e.Error, tt.wantIn)
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
}

// A sender that swaps current_config's names and values (docs/design.md,
// "Inputs rekey does not trust") and sends one twice, or with a value of
// the wrong type, is refused without the app's live credential quoted back
// in the answer: a map's keys are the sender's data, never quoted.
func TestASwappedCurrentConfigIsRefusedUnquoted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const secret = "Hunter2LiveSecret9"
	const live = "postgres://app:" + secret + "@db.example.com:5432/d1"
	const reg = `{"api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0",` +
		`"oauth":{"refresh_token":"r-1","access_token":"a-1","expires_at":"2030-01-01T00:00:00Z"},`
	for name, body := range map[string]string{
		"a swapped name twice": reg + `"current_config":{"` + live + `":"MYADDON_URL","` + live + `":"MYADDON_URL"}}`,
		"a name twice":         reg + `"current_config":{"MYADDON_URL":"` + live + `","MYADDON_URL":"` + live + `"}}`,
		"a wrong type":         reg + `"current_config":{"` + live + `":5}}`,
	} {
		resp := f.api(http.MethodPut, "/api/v1/instances/inst-cc", body)
		if resp.status != http.StatusBadRequest || strings.Contains(resp.body, secret) {
			t.Errorf("%s: got %d %s; want 400 quoting no config value", name, resp.status, resp.body)
		}
		if strings.Contains(name, "twice") && !strings.Contains(resp.body, `in \"current_config\"`) {
			t.Errorf("%s: got %s; want the answer to name current_config", name, resp.body)
		}
	}
}

// A registration that carries the credential's value where a name or an id
// belongs (names and values swapped: config_vars, current_credential_id) is
// refused without quoting it: the answer names the field and the value's
// length. A plain bad name is still quoted.
func TestAValueWhereANameBelongsIsRefusedUnquoted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const pw = "Hunter2-Pa55-w0rd"
	const live = "postgres://app:" + pw + "@db.example.com:5432/app"
	for name, body := range map[string]string{
		"config_vars": `{"api_version":"v3","config_vars":["` + live + `"],"oauth":{"refresh_token":"r","access_token":"a"}}`,
		"current_credential_id": `{"api_version":"v3","config_vars":["DATABASE_URL"],"current_credential_id":"` + live +
			`","oauth":{"refresh_token":"r","access_token":"a"}}`,
		"grace": `{"api_version":"v3","config_vars":["DATABASE_URL"],"grace":"` + live + `","oauth":{"refresh_token":"r","access_token":"a"}}`,
	} {
		rep := f.api(http.MethodPut, "/api/v1/instances/inst-leak", body)
		if rep.status != http.StatusUnprocessableEntity || strings.Contains(rep.body, pw) || !strings.Contains(rep.body, "not quoted") {
			t.Errorf("%s: got %d %s; want 422 saying the value is not quoted, without it", name, rep.status, rep.body)
		}
	}
	rep := f.api(http.MethodPut, "/api/v1/instances/inst-leak", `{"api_version":"v3","config_vars":["database_url"],"oauth":{"refresh_token":"r","access_token":"a"}}`)
	if !strings.Contains(rep.body, `config var name \"database_url\" is not valid`) {
		t.Errorf("a lower-case name: got %d %s; want it quoted", rep.status, rep.body)
	}
}
