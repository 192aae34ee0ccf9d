package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A verify or DELETE answered 200 whose JSON object, saying the call
// failed or that the credential does not work, is followed by more (a Go
// handler that wrote its answer and then http.Error, which adds its text
// to the body under the status already sent; a middleware's second write)
// read as no JSON at all, and so as the contract's bare 2xx: a verify
// answered {"valid":false} so pushed a credential that does not work to
// every app of the instance, and a DELETE answered {"ok":false,...} so was
// recorded revoked while the credential kept working (I3). Such an answer
// says two things: it is no yes, asked again (verify), or confirmed by
// verify (DELETE), as a 2xx whose body says it failed is.
func TestAnAnswerWithMoreAfterItsJSONIsNoYes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, body := range []string{
		`{"valid":false}` + "\nInternal Server Error\n",
		`{"ok":false,"error":"locked"}` + "\nInternal Server Error\n",
		`{"valid":true}` + "\n" + `{"error":"internal"}` + "\n",
		`{"ok":true}{"ok":false,"error":"locked"}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/verify") && strings.Contains(r.URL.Path, "still") {
				// The credential the DELETE was about still works.
				_, _ = w.Write([]byte(`{"valid":true}`))
				return
			}
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		h, err := issuer.NewHTTP(srv.URL, key, issuer.WithVerifyRechecks())
		if err != nil {
			t.Fatal(err)
		}
		err = h.Verify(ctx, "inst-1", "cred_1")
		var e *issuer.Error
		if !errors.As(err, &e) || e.Code != issuer.CodeErrorAnswer || !issuer.IsTransient(err) {
			t.Errorf("verify answered 200 %q: %v, want a transient error_answer", body, err)
		}
		if err := h.Revoke(ctx, "inst-1", "still_1"); err == nil {
			t.Errorf("revoke answered 200 %q, its verify saying the credential works: revoked, want no revocation", body)
		}
	}
	// Whole answers, a line break after them too, are read as before.
	for body, works := range map[string]bool{`{"valid":true}` + "\n": true, `{"valid":false}` + "\r\n": false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		h, err := issuer.NewHTTP(srv.URL, key, issuer.WithVerifyRechecks())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Verify(ctx, "inst-1", "cred_1"); (err == nil) != works {
			t.Errorf("verify answered 200 %q: %v, want works %v", body, err, works)
		}
	}
}
