package heroku_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

// rawServer answers every request with raw, written on the hijacked
// connection, which it then closes: a Heroku, or whatever stands in front
// of it, that breaks HTTP.
func rawServer(t *testing.T, raw string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString(raw)
		_ = buf.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A 2xx to a config change whose body cannot be read (the connection reset
// halfway, or a body past the client's limit) proves nothing of the push:
// it is no refusal, and no transient failure either, which the task would
// answer by pushing again and again; it is an answer that is not Heroku's
// (ErrUnexpectedAnswer), after which the push is read back. A read of the
// config that breaks so is transient: reading again changes nothing.
func TestAnUnreadable2xxToAPushIsNoTransientFailure(t *testing.T) {
	t.Parallel()
	cut := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n[{\"name\":\"MYADDON_URL\",\"val"
	huge := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n" + strings.Repeat(" ", 5000000)
	for name, raw := range map[string]string{"reset halfway": cut, "past the limit": huge} {
		srv := rawServer(t, raw)
		c := newClientAt(t, srv.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
		err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
		if !errors.Is(err, heroku.ErrUnexpectedAnswer) || heroku.Refused(err) || heroku.Classify(err) != heroku.ClassPermanent {
			t.Errorf("push answered 2xx, %s: %v (class %s, refused %v); want ErrUnexpectedAnswer, not refused",
				name, err, heroku.Classify(err), heroku.Refused(err))
		}
	}
	srv := rawServer(t, cut)
	c := newClientAt(t, srv.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	if _, err := c.GetConfig(context.Background(), v3Target()); heroku.Classify(err) != heroku.ClassTransient {
		t.Errorf("read-back reset halfway: %v (class %s); want transient", err, heroku.Classify(err))
	}
}

// A front answering "101 Switching Protocols" and holding the connection
// open: Go hands the connection over as the answer's body, which neither
// the client's timeout nor the caller's context ended, so a push or a read
// hung for good, a worker's goroutine and socket with it. It is no answer
// now: transient, and for a push no refusal, so the push stays unsettled.
func TestAnAnswerSwitchingProtocolsIsNoAnswer(t *testing.T) {
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
	c := newClientAt(t, srv.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	for name, call := range map[string]func(context.Context) error{
		"V3 push": func(ctx context.Context) error { return c.UpdateConfig(ctx, v3Target(), oneVar()) },
		"V1 push": func(ctx context.Context) error { return c.UpdateConfig(ctx, v1Target(), oneVar()) },
		"read":    func(ctx context.Context) error { _, err := c.GetConfig(ctx, v3Target()); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		select {
		case err := <-done:
			if heroku.Classify(err) != heroku.ClassTransient || heroku.Refused(err) {
				t.Errorf("%s answered 101: %v (class %s, refused %v); want no answer: transient, not refused",
					name, err, heroku.Classify(err), heroku.Refused(err))
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s answered 101 still waits 20 s on, past its 5 s context", name)
		}
		cancel()
	}
}

// What a server sends back never carries a secret of the call into an
// error: Go's client quotes a header line it cannot parse, and a server (or
// a proxy) may echo the request's token there or in a Request-Id.
func TestAnswersEchoingASecretLeaveNoneInErrors(t *testing.T) {
	t.Parallel()
	malformed := "HTTP/1.1 200 OK\r\nRequest-Id: 1\r\nAuthorization Bearer " + accessToken + "\r\n\r\n"
	srv := rawServer(t, malformed)
	c := newClientAt(t, srv.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
	if err == nil || strings.Contains(err.Error(), accessToken) || strings.Contains(fmt.Sprintf("%+v", err), accessToken) {
		t.Errorf("malformed header echoing the token: %v; want an error without it", err)
	}

	// V1 sends its password only inside the base64 of its Basic
	// authorization, which no scrubber of the raw password finds: echoed
	// in a header line Go quotes, it is not kept either.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("myaddon:"+v1Password))
	srv = rawServer(t, "HTTP/1.1 200 OK\r\nRequest-Id: 1\r\nAuthorization "+basic+"\r\n\r\n")
	c = newClientAt(t, srv.URL)
	err = c.UpdateConfig(context.Background(), v1Target(), oneVar())
	if err == nil || strings.Contains(err.Error(), basic[len("Basic "):len("Basic ")+12]) {
		t.Errorf("malformed header echoing V1's Basic authorization: %v; want an error without it", err)
	}

	// A pushed value echoed where Go quotes it without the word
	// "malformed" (a Transfer-Encoding or Content-Length it does not take),
	// Go-escaped, which no scrubber of whole values finds.
	value := `Hunter2"pa55\w0rd-secret`
	escaped := strings.Trim(strconv.Quote(value), `"`)
	for name, header := range map[string]string{"transfer-encoding": "Transfer-Encoding: ", "content-length": "Content-Length: "} {
		srv := rawServer(t, "HTTP/1.1 200 OK\r\nRequest-Id: 1\r\n"+header+value+"\r\n\r\n")
		c := newClientAt(t, srv.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
		err := c.UpdateConfig(context.Background(), v3Target(), []heroku.ConfigVar{{Name: "MYADDON_URL", Value: secret.New(value)}})
		if err == nil || strings.Contains(err.Error(), escaped) || strings.Contains(fmt.Sprintf("%+v", err), escaped) {
			t.Errorf("%s echoing the pushed value: %v; want an error without it", name, err)
		}
	}

	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Request-Id", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(echo.Close)
	c = newClientAt(t, echo.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	err = c.UpdateConfig(context.Background(), v3Target(), oneVar())
	var api *heroku.APIError
	if !errors.As(err, &api) || api.RequestID != "" || strings.Contains(err.Error(), accessToken) {
		t.Errorf("Request-Id echoing the token: %v; want a 500 with no request id", err)
	}
}

// newClientAt is newClient for a server of the test's own.
func newClientAt(t *testing.T, url string, opts ...heroku.Option) *heroku.Client {
	t.Helper()
	clock := &fixedClock{now: epoch}
	base := []heroku.Option{heroku.WithAPIURL(url), heroku.WithIDURL(url + "/"),
		heroku.WithOAuthClientSecret(secret.New(clientSecret)), heroku.WithV1Credentials("myaddon", secret.New(v1Password)),
		heroku.WithClock(clock.Now)}
	c, err := heroku.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A 2xx whose body has no Content-Length and no chunks ends where the
// connection closes: one closed in the middle of its JSON was read whole,
// and taken for an answer that is not Heroku's (a read ended for good). It
// is an answer lost on the way, as one cut short of its Content-Length is:
// a read is transient, and a push stays ErrUnexpectedAnswer, never
// refused. JSON that ends whole, and a page, are read as before.
func TestA2xxClosedMidJSONIsCutShort(t *testing.T) {
	t.Parallel()
	const head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
	get := func(target heroku.Target) func(*heroku.Client) error {
		return func(c *heroku.Client) error { _, err := c.GetConfig(context.Background(), target); return err }
	}
	state := func(c *heroku.Client) error { _, err := c.AddonState(context.Background(), v3Target()); return err }
	for _, tc := range []struct {
		name string
		body string
		call func(*heroku.Client) error
		want heroku.Class
	}{
		{"v3 read", `[{"name":"MYADDON_URL","value":"postgres://u:p@h/d"},{"name":"MYADDON_`, get(v3Target()), heroku.ClassTransient},
		{"v1 read", `{"id":"` + herokuID + `","config":{"MYADDON_URL":"postgres://u:p@`, get(v1Target()), heroku.ClassTransient},
		{"add-on state", `{"id":"x","state":"provis`, state, heroku.ClassTransient},
		{"v3 read whole", `[{"name":"MYADDON_URL","value":"postgres://u:p@h/d"}]`, get(v3Target()), heroku.ClassNone},
		{"v3 read not json", `<html>`, get(v3Target()), heroku.ClassPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := rawServer(t, head+tc.body)
			c := newClientAt(t, srv.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
			if err := tc.call(c); heroku.Classify(err) != tc.want {
				t.Errorf("answer %q: %v (class %s); want %s", tc.body, err, heroku.Classify(err), tc.want)
			}
		})
	}
	srv := rawServer(t, head+`[{"name":"MYADDON_URL","val`)
	c := newClientAt(t, srv.URL, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
	err := c.UpdateConfig(context.Background(), v3Target(), oneVar())
	if !errors.Is(err, heroku.ErrUnexpectedAnswer) || heroku.Refused(err) {
		t.Errorf("push answered 2xx cut short: %v (refused %v); want ErrUnexpectedAnswer, not refused", err, heroku.Refused(err))
	}
}
