package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// An answer in an encoding Go's transport does not undo (it asks for gzip
// alone): a proxy in front of the issuer that compresses with brotli or
// deflate whatever rekey asked. Its bytes read as they are held neither
// JSON nor a text, and a verify or DELETE answered 2xx so read as the
// contract's bare 2xx: a verify whose compressed body said {"valid":false}
// pushed a credential that does not work, a DELETE whose compressed body
// said it failed was recorded revoked. Such an answer is unreadable,
// retried; a gzip one the transport decodes is read as ever.
func TestAnAnswerInAnEncodingNotAskedForIsNoAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, enc := range []string{"br", "deflate", "x-gzip", "zstd"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", enc)
			_, _ = w.Write([]byte{0x1b, 0x0d, 0x00, 0xf8, 0x25, 0x14, 0xc2, 0x97, 0x11, 0x01})
		}))
		t.Cleanup(srv.Close)
		h, err := issuer.NewHTTP(srv.URL, key, issuer.WithVerifyRechecks())
		if err != nil {
			t.Fatal(err)
		}
		var e *issuer.Error
		if err := h.Verify(ctx, "inst-1", "cred_1"); !errors.As(err, &e) || e.Code != issuer.CodeUnreadable || !issuer.IsTransient(err) {
			t.Errorf("verify answered 200 in %s: %v, want a transient unreadable_answer", enc, err)
		}
		if err := h.Revoke(ctx, "inst-1", "cred_1"); !errors.As(err, &e) || e.Code != issuer.CodeUnreadable {
			t.Errorf("revoke answered 200 in %s: %v, want unreadable_answer, no revocation", enc, err)
		}
	}
}
