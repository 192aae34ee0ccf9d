package issuer_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
	if declared > 0 {
		head += "Content-Length: " + strconv.Itoa(declared) + "\r\n"
	}
	return rawIssuer(t, head+"\r\n"+body)
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

// unendedIssuer answers every request 200 with body in one chunk of a
// chunked body, or, when declared is positive, under a Content-Length of
// declared bytes, more than body, and closes the connection without the
// terminating chunk or the bytes missing: the body's framing never ends,
// and the client's read fails where the body stops.
func unendedIssuer(t *testing.T, body string, declared int) *issuer.HTTP {
	t.Helper()
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	if declared > 0 {
		return rawIssuer(t, head+"Content-Length: "+strconv.Itoa(declared)+"\r\n\r\n"+body)
	}
	return rawIssuer(t, head+"Transfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n", len(body), body))
}

// rawIssuer answers every request with answer, written as it is on the
// connection, which it then closes.
func rawIssuer(t *testing.T, answer string) *issuer.HTTP {
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
				_, _ = conn.Write([]byte(answer))
			}()
		}
	}()
	h, err := issuer.NewHTTP("http://"+ln.Addr().String(), key, issuer.WithVerifyRechecks())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// An answer whose JSON arrived whole and whose connection closed before
// the body's framing ended (the last chunk of a chunked body missing, or
// fewer bytes than the Content-Length) is the issuer's whole answer: a
// complete JSON value says all it says. A mint so answered was taken for
// one broken off, its good credential discarded and revoked and the
// rotation failed for good; a verify, DELETE or usage so answered was
// retried for nothing. It is read as the answer. One cut inside its JSON
// stays unreadable: retried, or, for a mint naming its credential, that
// credential named (BrokenOff).
func TestAnswerWholeThenCutIsTheAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const mint = `{"credential_id":"cred_whole","config":{"MYADDON_URL":"postgres://u:0123456789abcdef@db.example/d"}}`
	for _, declared := range []int{0, len(mint) + 40} {
		t.Run(fmt.Sprintf("declared %d", declared), func(t *testing.T) {
			t.Parallel()
			c, err := unendedIssuer(t, mint+"\n", declared).Mint(ctx, "inst-1", "rot-1")
			if err != nil || c.ID != "cred_whole" || c.Config["MYADDON_URL"].Reveal() != "postgres://u:0123456789abcdef@db.example/d" {
				t.Errorf("mint answered whole, then cut: %+v, %v; want the credential", c.ID, err)
			}
			if err := unendedIssuer(t, `{"valid":true}`, declared).Verify(ctx, "inst-1", "cred_1"); err != nil {
				t.Errorf("verify answered {\"valid\":true}, then cut: %v, want it works", err)
			}
			if err := unendedIssuer(t, `{"valid":false}`, declared).Verify(ctx, "inst-1", "cred_1"); err == nil {
				t.Error("verify answered {\"valid\":false}, then cut: works, want no yes")
			}
			if err := unendedIssuer(t, `{"ok":true}`, declared).Revoke(ctx, "inst-1", "cred_1"); err != nil {
				t.Errorf("revoke answered {\"ok\":true}, then cut: %v, want it revoked", err)
			}
			u, err := unendedIssuer(t, `{"last_used_at":"2024-01-02T03:04:05Z"}`, declared).Usage(ctx, "inst-1", "cred_1")
			if err != nil || !u.LastUsedAt.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
				t.Errorf("usage answered whole, then cut: %+v, %v; want its time", u, err)
			}
			// Cut inside the JSON: unreadable as before.
			_, err = unendedIssuer(t, mint[:70], declared).Mint(ctx, "inst-1", "rot-1")
			var unusable *issuer.UnusableCredentialError
			if !errors.As(err, &unusable) || unusable.CredentialID != "cred_whole" || !unusable.BrokenOff || !unusable.ConfigUnchecked {
				t.Errorf("mint cut inside its config: %v, want the credential named, broken off", err)
			}
			for _, body := range []string{`{"valid":true`, `{"valid":true}{`, `{"valid":true} x`, `OK`, `tru`, `12`} {
				err := unendedIssuer(t, body, declared).Verify(ctx, "inst-1", "cred_1")
				var e *issuer.Error
				if !errors.As(err, &e) || e.Code != issuer.CodeUnreadable || !issuer.IsTransient(err) {
					t.Errorf("verify answered %q, then cut: %v, want a transient unreadable_answer", body, err)
				}
				err = unendedIssuer(t, body, declared).Revoke(ctx, "inst-1", "cred_1")
				if !errors.As(err, &e) || e.Code != issuer.CodeUnreadable || !issuer.IsTransient(err) {
					t.Errorf("revoke answered %q, then cut: %v, want a transient unreadable_answer", body, err)
				}
			}
		})
	}
}

// A mint answered 200 whose JSON breaks off inside its config under a
// framing that reads as a clean end (the body framed by the connection's
// end, or a Content-Length shorter than what the issuer wrote) is cut as
// one whose reading failed is: unreadable, its credential named, its
// config unchecked and BrokenOff, so that the rotation asks the mint again
// rather than end for good, the credential left for an operator to revoke
// at the issuer. As verify's and DELETE's (cutShort).
func TestMintAnsweredJSONCutShortIsBrokenOff(t *testing.T) {
	t.Parallel()
	const whole = `{"credential_id":"cred_short","config":{"MYADDON_URL":"postgres://u:0123456789abcdef@db.example/d"}}`
	for name, h := range map[string]*issuer.HTTP{
		"connection closed mid-body": cutIssuer(t, whole[:70], 0),
		"Content-Length short":       cutIssuer(t, whole, 70),
	} {
		_, err := h.Mint(context.Background(), "inst-1", "rot-1")
		var unusable *issuer.UnusableCredentialError
		if !errors.As(err, &unusable) || unusable.CredentialID != "cred_short" || unusable.Code() != issuer.CodeUnreadable ||
			!unusable.ConfigUnchecked || !unusable.BrokenOff {
			t.Errorf("%s: Mint = %v (%+v), want an unreadable answer naming cred_short, broken off", name, err, unusable)
		}
	}
	// Whole, framed the same way: the credential.
	if c, err := cutIssuer(t, whole, 0).Mint(context.Background(), "inst-1", "rot-1"); err != nil || c.ID != "cred_short" {
		t.Errorf("Mint of a whole answer = %q, %v; want the credential", c.ID, err)
	}
}
