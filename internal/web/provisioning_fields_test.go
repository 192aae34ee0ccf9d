package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// refusedRegistrations puts each body as a new instance and wants 422
// naming wantIn, with no instance stored.
func refusedRegistrations(t *testing.T, f *fixture, tests []refusedRegistration) {
	t.Helper()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("inst-refused-%d", i)
			resp := f.api(http.MethodPut, "/api/v1/instances/"+id, tt.body)
			if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, tt.wantIn) {
				t.Errorf("got %d %.200s, want 422 naming %s", resp.status, resp.body, tt.wantIn)
			}
			if _, err := f.st.Instance(context.Background(), id); err == nil {
				t.Error("the instance was registered")
			}
		})
	}
}

type refusedRegistration struct{ name, body, wantIn string }

const v3Registration = `"api_version":"v3","config_vars":["MYADDON_URL"]`

// The OAuth tokens a registration carries go into the Authorization header
// of every push. Go's HTTP client will not send a header holding a line
// break or a NUL, so a token read from a file with its trailing newline
// was kept, and every rotation's push was recorded as attempted (its
// credential then unconfirmed) and never left, the error blaming Heroku's
// answer. rekey refuses such a token from Heroku's token endpoint; it must
// refuse it from the partner's registration too.
func TestRegistrationRefusesTokensThatCannotBeSent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	oauth := func(access, refresh string) string {
		a, _ := json.Marshal(access)
		r, _ := json.Marshal(refresh)
		return `{` + v3Registration + `,"oauth":{"access_token":` + string(a) + `,"refresh_token":` + string(r) +
			`,"expires_at":"2030-01-01T00:00:00Z"}}`
	}
	refusedRegistrations(t, f, []refusedRegistration{
		{"access token with a trailing line break", oauth("at-1\n", "rt-1"), "oauth.access_token"},
		{"access token with a NUL", oauth("at\x00-1", "rt-1"), "oauth.access_token"},
		{"access token of 100 KB", oauth(strings.Repeat("a", 100<<10), "rt-1"), "oauth.access_token"},
		{"refresh token with a header in it", oauth("at-1", "rt-1\r\nX-Injected: 1"), "oauth.refresh_token"},
	})
}

// Heroku's V1 ids read "app123@heroku.com". The id is kept in the instance
// hash that every claim reads, and shown by the API and the CLI, so one of
// half a megabyte, or holding a terminal escape or a path, is refused.
func TestRegistrationRefusesHerokuIDThatIsNoID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const v1 = `{"api_version":"v1","config_vars":["MYADDON_URL"],"heroku_id":`
	refusedRegistrations(t, f, []refusedRegistration{
		{"heroku_id of 500 KB", v1 + `"` + strings.Repeat("a", 500<<10) + `"}`, "heroku_id"},
		{"heroku_id with a terminal escape", v1 + `"app1@heroku.com\u001b[2J"}`, "heroku_id"},
		{"heroku_id with a path", v1 + `"app1@heroku.com/../../account"}`, "heroku_id"},
		{"heroku_id with a line break", v1 + `"app1@heroku.com\nforged"}`, "heroku_id"},
	})
}

// A worker posts to the log_input_url with the URL's token as basic auth,
// from inside the partner's network. Heroku's is a logplex host; one naming
// the cloud metadata address, a private or unspecified address (0.0.0.0
// reaches this machine) sends that request where the partner's own services
// listen. Only the local fake Heroku's own address stays open over http:
// any other port of this machine (a Redis, rekey's own web process), the
// fake's port under another name, or a public host over http is refused.
func TestRegistrationRefusesLogInputURLToInternalAddresses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	logInput := func(u string) string {
		return `{` + v3Registration + `,"oauth":{"refresh_token":"rt-1"},"log_input_url":"` + u + `"}`
	}
	fake, err := url.Parse(f.heroURL)
	if err != nil {
		t.Fatal(err)
	}
	refusedRegistrations(t, f, []refusedRegistration{
		{"another port of this machine", logInput("http://t:tok@127.0.0.1:6379/logs"), "log_input_url"},
		{"rekey's own web process", logInput(f.srv.URL + "/api/v1/instances/inst-1"), "log_input_url"},
		{"the fake's port by another name", logInput("http://t:tok@localhost:" + fake.Port() + "/logs"), "log_input_url"},
		{"a public host over http", logInput("http://t:tok@1.us.logplex.io/logs"), "log_input_url"},
		// Over https the dialer refuses these when a worker connects: the
		// registration says so instead of every notice failing unseen.
		{"loopback over https", logInput("https://t:tok@127.0.0.1:6379/logs"), "this machine"},
		{"IPv6 loopback over https", logInput("https://t:tok@[::1]:6379/logs"), "this machine"},
		{"localhost over https", logInput("https://t:tok@LocalHost.:6379/logs"), "this machine"},
		{"a name under .localhost", logInput("https://t:tok@logs.localhost/logs"), "this machine"},
		{"loopback as one number", logInput("https://t:tok@2130706433/logs"), "this machine"},
		{"loopback in hex", logInput("https://t:tok@0x7f000001/logs"), "this machine"},
		{"loopback shortened", logInput("https://t:tok@127.1/logs"), "this machine"},
		{"the metadata address", logInput("https://t:tok@169.254.169.254/latest/meta-data"), "log_input_url"},
		{"a private address", logInput("https://t:tok@10.0.0.7/logs"), "log_input_url"},
		{"a private IPv6 address", logInput("https://t:tok@[fd00::7]/logs"), "log_input_url"},
		{"an IPv4-mapped private address", logInput("https://t:tok@[::ffff:192.168.1.1]/logs"), "log_input_url"},
		{"the unspecified address", logInput("https://t:tok@0.0.0.0:6379/logs"), "log_input_url"},
		{"500 KB", logInput("https://t:tok@1.us.logplex.io/" + strings.Repeat("a", 500<<10)), "log_input_url"},
	})
}

// What Heroku really sends still registers: a V1 id, a logplex URL with
// its token, and bearer tokens as Heroku's OAuth endpoint issues them.
func TestRegistrationKeepsWhatHerokuReallySends(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for id, body := range map[string]string{
		"inst-v1": `{"api_version":"v1","config_vars":["MYADDON_URL"],"heroku_id":"app123@heroku.com",` +
			`"log_input_url":"https://token:t.01234567-89ab-cdef-0123-456789abcdef@1.us.logplex.io/logs"}`,
		"inst-v3": `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth":{"access_token":"HRKU-01234567-89ab-cdef-0123-456789abcdef",` +
			`"refresh_token":"HRKU-abcdef01-2345-6789-abcd-ef0123456789","expires_at":"2030-01-01T00:00:00Z"},` +
			`"log_input_url":"` + f.heroURL + `/logs"}`,
	} {
		if resp := f.api(http.MethodPut, "/api/v1/instances/"+id, body); resp.status != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", id, resp.status, resp.body)
		}
	}
	if in, err := f.st.Instance(context.Background(), "inst-v1"); err != nil || in.HerokuID != "app123@heroku.com" {
		t.Errorf("inst-v1: %+v, %v", in, err)
	}
}
