package heroku

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rekeyhq/rekey/internal/printable"
)

// planted marks where a fuzzed body holds a secret of the request.
const planted = "SECRET"

// FuzzResponseError feeds responseError, the one function that turns a
// Heroku answer into an error, arbitrary statuses and bodies holding a
// secret of the request (where the body says SECRET). Properties: no
// panic; 2xx is nil, 429 a *RateLimitError, anything else an *APIError
// whose id and message are clipped; the secret appears in no error text,
// even though Heroku's id and message are kept.
func FuzzResponseError(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{404, `{"id":"not_found","message":"Couldn't find that add-on."}`},
		{422, `{"id":"invalid_params","message":"value SECRET is not valid for MYADDON_URL"}`},
		{403, `{"id":"SECRET","message":"SECRETSECRET"}`},
		{500, `<html>internal error SECRET</html>`},
		{401, `{"id":"unauthorized","message":"Invalid credentials provided: Bearer SECRET"}`},
		{429, `{"id":"rate_limit","message":"Your account reached the API rate limit"}`},
		{400, `{"id":["x"],"message":{"nested":"SECRET"}}`},
		{200, `{}`},
		{503, `{"message":"` + strings.Repeat("é", 300) + `SECRET"}`},
		{422, `{"id":"bad\nrekey: all clear","message":"x\n  cred_forged revoked\u001b[2J\u001b]0;pwned\u0007 \u202egnp.exe"}`},
	} {
		f.Add(seed.status, []byte(seed.body), []byte("tok"))
	}
	f.Fuzz(func(t *testing.T, status int, body, secretSeed []byte) {
		st := 100 + int(uint(status)%500) // 100..599
		sec := "hrku-" + hex.EncodeToString(secretSeed)
		body = bytes.ReplaceAll(body, []byte(planted), []byte(sec))
		resp := &http.Response{StatusCode: st, Header: http.Header{"Request-Id": {"req-1"}},
			Body: io.NopCloser(bytes.NewReader(body))}
		err := responseError(resp, "config", false, time.Unix(1700000000, 0), []string{"", sec})
		checkResponseError(t, st, err)
		if err != nil && strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), sec) {
			t.Fatalf("error on %d leaks the request's secret: %v", st, err)
		}
	})
}

func checkResponseError(t *testing.T, st int, err error) {
	var rate *RateLimitError
	var api *APIError
	switch {
	case st >= 200 && st <= 299:
		if err != nil {
			t.Fatalf("%d = %v, want nil", st, err)
		}
	case st == http.StatusTooManyRequests:
		if !errors.As(err, &rate) {
			t.Fatalf("429 = %T %v, want *RateLimitError", err, err)
		}
	case !errors.As(err, &api) || api.Status != st:
		t.Fatalf("%d = %T %v, want *APIError", st, err, err)
	case len(api.ID) > 64+len("…") || len(api.Message) > maxMessageLen+len("…"):
		t.Fatalf("%d: id of %d bytes, message of %d bytes: not clipped", st, len(api.ID), len(api.Message))
	case !utf8.ValidString(api.ID) || !utf8.ValidString(api.Message):
		t.Fatalf("%d: id %q or message %q is not valid UTF-8", st, api.ID, api.Message)
	case api.ID != "" && !idPattern.MatchString(api.ID):
		t.Fatalf("%d: id %q is not an id", st, api.ID)
	case strings.ContainsFunc(api.Message, printable.Unsafe):
		t.Fatalf("%d: message %q holds a control character", st, api.Message)
	}
}
