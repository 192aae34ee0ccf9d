package issuer_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// cutIssuer answers every request 200 with body and closes the connection
// right after it, sending no Content-Length and no chunked framing: the
// body ends where the connection does, as HTTP/1.1 lets a server answer
// (Python's http.server, a proxy passing an HTTP/1.0 upstream on). A
// connection that breaks mid-body then reads as a clean end. declared,
// when positive, is sent as a Content-Length shorter than body (a proxy
// that changed the body and kept its length): the client reads that many
// bytes and stops, a clean end too.
func cutIssuer(t *testing.T, body string, declared int) *issuer.HTTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_ = req.Body.Close()
				head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
				if declared > 0 {
					head += "Content-Length: " + strconv.Itoa(declared) + "\r\n"
				}
				_, _ = conn.Write([]byte(head + "\r\n" + body))
			}()
		}
	}()
	h, err := issuer.NewHTTP("http://"+ln.Addr().String(), key, issuer.WithVerifyRechecks())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A verify or DELETE answered 200 whose JSON broke off before its end (the
// connection closed mid-body under a body framed by the connection's end,
// or a Content-Length shorter than what the issuer wrote) reads as a
// clean, short body. What is missing may be what said the call failed or
// that the credential does not work ({"valid":false,...},
// {"ok":false,"error":...}): read as the contract's bare 2xx, the
// credential was pushed to every app of the instance, or recorded revoked
// while it kept working (I3). Such an answer is unreadable, retried, as
// one whose reading failed is.
func TestVerifyOrRevokeAnsweredJSONCutShortIsNoAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		op       string
		body     string
		declared int
	}{
		{"verify, connection closed mid-body", "verify", `{"credential_id":"cred_1","valid":fa`, 0},
		{"verify, cut within a string", "verify", `{"credential_id":"cred_1","error":"invalid_cred`, 0},
		{"verify, Content-Length short", "verify", `{"credential_id":"cred_1","valid":false}`, 26},
		{"revoke, connection closed mid-body", "revoke", `{"credential_id":"cred_1","ok":fal`, 0},
		{"revoke, Content-Length short", "revoke", `{"credential_id":"cred_1","ok":false,"error":"locked"}`, 26},
		{"verify, an array cut", "verify", `[{"valid":false`, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := cutIssuer(t, tt.body, tt.declared)
			var err error
			if tt.op == "verify" {
				err = h.Verify(ctx, "inst-1", "cred_1")
			} else {
				err = h.Revoke(ctx, "inst-1", "cred_1")
			}
			var e *issuer.Error
			if !errors.As(err, &e) || e.Code != issuer.CodeUnreadable || !issuer.IsTransient(err) {
				t.Fatalf("%s answered 200 %q cut short: %v, want a transient unreadable_answer", tt.op, tt.body, err)
			}
		})
	}
	// Whole answers, framed the same way, are read as before.
	for _, body := range []string{`{"credential_id":"cred_1","valid":true}`, "", "OK\n", `{"valid":true}` + "\n"} {
		if err := cutIssuer(t, body, 0).Verify(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("verify answered 200 %q whole: %v, want it works", body, err)
		}
		if err := cutIssuer(t, body, 0).Revoke(ctx, "inst-1", "cred_1"); err != nil {
			t.Errorf("revoke answered 200 %q whole: %v, want it revoked", body, err)
		}
	}
}
