package issuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A 3xx is never followed, whatever client the issuer was given: the
// redirect target receives nothing, and the answer is a transient error,
// never a success (a redirected DELETE is not a revocation).
func TestHTTPNeverFollowsRedirects(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"credential_id":"c","config":{"A":"b"}}`))
	}))
	t.Cleanup(target.Close)
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, op := range []string{"mint", "verify", "revoke"} {
			t.Run(fmt.Sprintf("%s %d", op, status), func(t *testing.T) {
				t.Parallel()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, target.URL+r.URL.Path, status)
				}))
				t.Cleanup(srv.Close)
				// The client that follows every redirect uses the server's
				// transport, not http.DefaultTransport: a 3xx to POST or
				// DELETE has no body, and other tests' server Close would
				// otherwise break it (TestHTTPCallsSurviveOthersClosingIdleConnections).
				following := &http.Client{Transport: srv.Client().Transport,
					CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
				for _, opts := range [][]issuer.Option{nil, {issuer.WithHTTPClient(following)}} {
					h, err := issuer.NewHTTP(srv.URL, key, opts...)
					if err != nil {
						t.Fatal(err)
					}
					err = call(h, op, "cred_1")
					var e *issuer.Error
					if !issuer.IsTransient(err) || !errors.As(err, &e) || e.Status != status || e.Code != issuer.CodeRedirect {
						t.Errorf("%s on %d = %v, want a transient redirect error", op, status, err)
					}
				}
			})
		}
	}
	t.Cleanup(func() {
		if n := elsewhere.Load(); n != 0 {
			t.Errorf("the redirect target received %d requests", n)
		}
	})
}

// WithHTTPClient does not change the caller's client.
func TestWithHTTPClientLeavesTheCallersClientAlone(t *testing.T) {
	t.Parallel()
	c := &http.Client{}
	if _, err := issuer.NewHTTP("https://issuer.example", key, issuer.WithHTTPClient(c)); err != nil {
		t.Fatal(err)
	}
	if c.CheckRedirect != nil {
		t.Error("NewHTTP changed the caller's client")
	}
}

// An issuer's error answer leaves only its status and a code in the error:
// no free text, whatever field or format it comes in.
func TestHTTPErrorsKeepNoIssuerText(t *testing.T) {
	t.Parallel()
	const leak = "database unreachable while checking postgres://u17:pw17@db/x"
	tests := []struct {
		status   int
		body     string
		wantCode string
	}{
		{503, leak, "service_unavailable"},
		{503, `{"error":"` + leak + `"}`, "service_unavailable"},
		{503, `{"message":"` + leak + `"}`, "service_unavailable"},
		{500, `{"code":"` + leak + `","error":"` + leak + `"}`, "internal_server_error"},
		{422, `{"error":"instance_suspended","message":"` + leak + `"}`, "instance_suspended"},
		{422, `{"code":"quota_exceeded","error":"` + leak + `"}`, "quota_exceeded"},
		{403, `{"error":"a3f9c2e1b4d5"}`, "forbidden"},                             // a token-like value is no code
		{409, `{"error":"sk_live_abc"}`, "sk_live_abc"},                            // a word is: the contract says so
		{409, `{"error":"abcdefghijklmnopqrstuvwxyzabcdefghijklmno"}`, "conflict"}, // 41 bytes
		{429, `{"error":{"nested":"` + leak + `"}}`, "too_many_requests"},
		{302, `{"error":"moved_here"}`, issuer.CodeRedirect},
		{422, `{"error":"unreadable_answer"}`, "unprocessable_entity"}, // rekey's own codes are not the issuer's to claim
		{503, `{"code":"timeout"}`, "service_unavailable"},
		{418, ``, "i_m_a_teapot"},
		{599, `<html>` + leak + `</html>`, "status_599"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %.30s", tt.status, tt.body), func(t *testing.T) {
			t.Parallel()
			for _, op := range []string{"mint", "verify", "revoke"} {
				err := call(scriptedIssuer(t, &scripted{status: tt.status, body: tt.body}), op, "cred_1")
				var e *issuer.Error
				if !errors.As(err, &e) || e.Code != tt.wantCode || e.Status != tt.status {
					t.Fatalf("%s = %#v, want status %d code %s", op, err, tt.status, tt.wantCode)
				}
				for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
					if strings.Contains(out, "pw17") || strings.Contains(out, "unreachable") {
						t.Errorf("%s error leaks the issuer's text: %s", op, out)
					}
				}
			}
		})
	}
}

// An answer longer than the limit is a clean transient error, whatever its
// status, naming nothing of the body.
func TestHTTPOversizedAnswerIsTransient(t *testing.T) {
	t.Parallel()
	const value = "postgres://u:oversized-secret-77@db/x"
	config := map[string]string{}
	for i := range 5000 {
		config[fmt.Sprintf("MYADDON_URL_%04d", i)] = value + strings.Repeat("x", 40)
	}
	big, _ := json.Marshal(map[string]any{"credential_id": "cred_1", "config": config})
	for _, status := range []int{200, 422, 500} {
		err := call(scriptedIssuer(t, &scripted{status: status, body: string(big)}), "mint", "rot-1")
		var e *issuer.Error
		if !issuer.IsTransient(err) || !errors.As(err, &e) || e.Code != issuer.CodeUnreadable ||
			strings.Contains(err.Error(), "oversized-secret") {
			t.Errorf("%d with a %d KiB body = %v, want transient %s", status, len(big)>>10, err, issuer.CodeUnreadable)
		}
	}
}

// A call that times out keeps only the kind of failure, and errors.Is still
// recognises it.
func TestHTTPTimeoutKeepsOnlyTheKind(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	h, err := issuer.NewHTTP(srv.URL+"/hook-token-42", key, issuer.WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	err = h.Revoke(context.Background(), "inst-1", "cred_1")
	var e *issuer.Error
	if !errors.As(err, &e) || e.Code != issuer.CodeTimeout || !errors.Is(err, context.DeadlineExceeded) ||
		!issuer.IsTransient(err) || err.Error() != "issuer revoke: timeout" {
		t.Errorf("Revoke = %q, want transient timeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Revoke(ctx, "inst-1", "cred_1"); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "hook-token-42") {
		t.Errorf("Revoke with a cancelled context = %q, want canceled", err)
	}
}

// Verify and revoke bodies name the credential the path names and the
// action the method stands for.
func TestHTTPBodiesNameTheCredentialAndAction(t *testing.T) {
	t.Parallel()
	s := &scripted{status: 204}
	h := scriptedIssuer(t, s)
	ops := []string{"verify", "revoke"}
	for _, op := range ops {
		if err := call(h, op, "cred_9"); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.bodies) != len(ops) {
		t.Fatalf("%d bodies sent, want %d", len(s.bodies), len(ops))
	}
	for i, body := range s.bodies {
		want := `{"action":"` + ops[i] + `","credential_id":"cred_9","instance_id":"inst-1"}`
		if body != want {
			t.Errorf("body %d = %s, want %s", i, body, want)
		}
	}
}

// Plain http:// is refused unless the host is loopback or WithAllowHTTP
// says so: minted credentials travel in the answers.
func TestNewHTTPRequiresHTTPSForRemoteHosts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url   string
		allow bool
		ok    bool
	}{
		{"https://issuer.example", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://127.200.0.1", false, true},
		{"http://[::1]:8080/hooks", false, true},
		{"http://LocalHost:8080", false, true},
		{"http://issuer.example", false, false},
		{"http://localhost.issuer.example", false, false},
		{"http://127.0.0.1.nip.io", false, false},
		{"http://[::ffff:10.0.0.1]", false, false},
		{"http://issuer.example", true, true},
	}
	for _, c := range cases {
		_, err := issuer.NewHTTP(c.url, key, issuer.WithAllowHTTP(c.allow))
		if (err == nil) != c.ok {
			t.Errorf("NewHTTP(%s, allow %v) = %v, want ok %v", c.url, c.allow, err, c.ok)
		}
	}
}

func TestStatusCode(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]string{
		503: "service_unavailable", 500: "internal_server_error", 404: "not_found", 429: "too_many_requests",
		301: "redirect", 308: "redirect", 203: "non_authoritative_information", 505: "http_version_not_supported", 799: "status_799",
	} {
		if got := issuer.StatusCode(status); got != want {
			t.Errorf("StatusCode(%d) = %s, want %s", status, got, want)
		}
	}
}
