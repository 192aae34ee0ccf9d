package issuer_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// An issuer (or a front) that answers "101 Switching Protocols" and holds
// the connection open: Go hands the connection over as the answer's body,
// which neither the client's timeout nor the caller's context ended, so
// every call to it hung for good, its goroutine and socket with it. A 1xx
// answer is now no answer, retried; and reading any answer's body ends with
// the caller's context.
func TestAnIssuerAnswering101DoesNotHoldTheCall(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		_ = buf.Flush()
		_, _ = bufio.NewReader(conn).ReadByte() // until the client closes it
	}))
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, secret.New("k0123456789abcdef")) // rekey's client, its 30 s timeout
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(context.Context) error{
		"mint":   func(ctx context.Context) error { _, err := h.Mint(ctx, "inst-1", "rot-1"); return err },
		"verify": func(ctx context.Context) error { return h.Verify(ctx, "inst-1", "cred-1") },
		"revoke": func(ctx context.Context) error { return h.Revoke(ctx, "inst-1", "cred-1") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- call(ctx) }()
			select {
			case err := <-done:
				if !issuer.IsTransient(err) {
					t.Errorf("%s answered 101: %v; want a failure retried later", name, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s answered 101 still waits 20 s on, past its 5 s context", name)
			}
		})
	}
}
