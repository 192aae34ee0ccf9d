package web_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/web"
)

// A registration's current_config must name exactly its config_vars, and
// only goes with current_credential_id, which must not be one of its
// secrets: anything else is refused (422)
// before anything is stored, and the answer quotes none of the values, nor
// a name config_vars does not hold (a value sent where a name belongs).
func TestCurrentConfigWithWrongNamesIsRefused(t *testing.T) {
	t.Parallel()
	const value = "postgres://u:current-config-secret-6b1f@db.example.com/1"
	const start = `{"api_version":"v1","heroku_id":"app1@heroku.com","config_vars":["MYADDON_URL","MYADDON_HOST"]`
	for _, tc := range []struct{ name, body string }{
		{"without current_credential_id", start + `,"current_config":{"MYADDON_URL":"` + value + `","MYADDON_HOST":"db"}}`},
		{"a var missing", start + `,"current_credential_id":"cred-0","current_config":{"MYADDON_URL":"` + value + `"}}`},
		{"a var extra", start + `,"current_credential_id":"cred-0","current_config":{"MYADDON_URL":"` + value +
			`","MYADDON_HOST":"db","` + value + `":"x"}}`},
		{"a var empty", start + `,"current_credential_id":"cred-0","current_config":{"MYADDON_URL":"","MYADDON_HOST":"` + value + `"}}`},
		{"empty", start + `,"current_credential_id":"cred-0","current_config":{}}`},
		// An id that is the credential's secret would be written in the
		// clear wherever ids go (I5).
		{"an id that is the URL's password", start + `,"current_credential_id":"current-config-secret-6b1f",` +
			`"current_config":{"MYADDON_URL":"` + value + `","MYADDON_HOST":"db"}}`},
		{"an id that is an API key", start + `,"current_credential_id":"sk_live_current-config-secret_4eC39HqLyjWDarjtT1zdp7dc",` +
			`"current_config":{"MYADDON_URL":"` + value + `","MYADDON_HOST":"sk_live_current-config-secret_4eC39HqLyjWDarjtT1zdp7dc"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log bytes.Buffer
			f := newFixture(t, func(p *web.Params) { p.Logger = zerolog.New(&log) })
			before := redistest.Dump(t, f.r)
			resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", tc.body)
			if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, "current_config") {
				t.Fatalf("got %d, want 422 naming current_config: %s", resp.status, resp.body)
			}
			if strings.Contains(resp.body, "current-config-secret") || strings.Contains(log.String(), "current-config-secret") {
				t.Errorf("the answer or the log quotes a value: %s", resp.body)
			}
			if after := redistest.Dump(t, f.r); after != before {
				t.Error("a refused registration wrote to Redis")
			}
		})
	}
}

// A registration with current_config stores the fingerprint of the config,
// never its values: the current credential knows its config
// (IsCurrentConfig) and nothing rekey writes or answers holds a value.
func TestCurrentConfigIsKeptAsAFingerprintOnly(t *testing.T) {
	t.Parallel()
	const value = "postgres://u:current-config-secret-0e8a@db.example.com/1"
	var log bytes.Buffer
	f := newFixture(t, func(p *web.Params) { p.Logger = zerolog.New(&log).Level(zerolog.DebugLevel) })
	body := `{"api_version":"v1","heroku_id":"app1@heroku.com","config_vars":["MYADDON_URL"],` +
		`"current_credential_id":"cred-0","current_config":{"MYADDON_URL":"` + value + `"}}`
	for range 2 { // idempotent
		if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", body); resp.status != http.StatusOK {
			t.Fatalf("PUT: got %d, want 200: %s", resp.status, resp.body)
		}
	}
	if resp := f.api(http.MethodGet, "/api/v1/instances/inst-1", ""); resp.status != http.StatusOK {
		t.Fatalf("GET: got %d: %s", resp.status, resp.body)
	}
	is, err := f.st.IsCurrentConfig(context.Background(), "inst-1", map[string]secret.String{"MYADDON_URL": secret.New(value)})
	if err != nil || !is {
		t.Errorf("IsCurrentConfig(the registered config) = %v, %v; want true", is, err)
	}
	for place, text := range map[string]string{"Redis": redistest.Dump(t, f.r), "answers": f.seen.String(), "web log": log.String()} {
		if strings.Contains(text, "current-config-secret") {
			t.Errorf("%s holds the current_config's value", place)
		}
	}
}
