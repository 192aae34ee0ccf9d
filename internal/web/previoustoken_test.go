package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/testbuf"
	"github.com/rekeyhq/rekey/internal/web"
)

// previousAPIToken is the token REKEY_API_TOKEN replaced, in the tests.
const previousAPIToken = "previous-api-token-0123456789"

// TestThePreviousAPITokenIsTakenWhileItIsSet plays an operator rotating
// REKEY_API_TOKEN: a producer not yet moved to the new token keeps working
// while REKEY_API_TOKEN_PREVIOUS holds the old one, each use is logged
// with the client it came from (at most a line a minute), and once the
// variable is unset the old token is refused like any other.
func TestThePreviousAPITokenIsTakenWhileItIsSet(t *testing.T) {
	t.Parallel()
	var logs testbuf.Buffer
	f := newFixture(t, func(p *web.Params) {
		p.APITokenPrevious = secret.New(previousAPIToken)
		p.Logger = zerolog.New(&logs)
	})
	f.register("inst-1", "cred-0")
	get := func(f *fixture, token string) reply {
		return f.do(http.MethodGet, "/api/v1/instances/inst-1", nil, http.Header{"Authorization": {"Bearer " + token},
			"X-Forwarded-For": {"203.0.113.7"}})
	}
	for _, token := range []string{apiToken, previousAPIToken, previousAPIToken} {
		if r := get(f, token); r.status != http.StatusOK {
			t.Errorf("GET with token %.8s…: %d %.200s, want 200", token, r.status, r.body)
		}
	}
	if r := get(f, "another-token-0123456789"); r.status != http.StatusUnauthorized {
		t.Errorf("GET with a token neither variable holds: %d, want 401", r.status)
	}
	out := logs.String()
	if n := strings.Count(out, "api_token_previous_used"); n != 1 || !strings.Contains(out, `"last_client":"203.0.113.7"`) {
		t.Errorf("%d api_token_previous_used lines, want one naming the client 203.0.113.7:\n%s", n, out)
	}
	if strings.Contains(out, previousAPIToken) || strings.Contains(out, apiToken) {
		t.Errorf("the log holds a token:\n%s", out)
	}
	f.clock.Advance(time.Minute)
	if r := get(f, previousAPIToken); r.status != http.StatusOK || strings.Count(logs.String(), "api_token_previous_used") != 2 {
		t.Errorf("a minute later: %d and log\n%s\nwant 200 and a second line", r.status, logs.String())
	}

	unset := newFixture(t)
	unset.register("inst-1", "cred-0")
	if r := get(unset, previousAPIToken); r.status != http.StatusUnauthorized {
		t.Errorf("the old token once REKEY_API_TOKEN_PREVIOUS is unset: %d, want 401", r.status)
	}
}
