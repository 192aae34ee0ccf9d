package heroku

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/secret"
)

// maxBodyBytes bounds what the client reads from a successful response; error
// bodies have their own, smaller bound (maxErrorBodyBytes).
const maxBodyBytes = 4 << 20

// call is one HTTP request to Heroku.
type call struct {
	endpoint    string
	method      string
	url         string
	body        []byte
	contentType string
	// authorize sets the Authorization header.
	authorize func(*http.Request)
	// addonID is the Limiter key; empty for OAuth calls, which skip the
	// Limiter because they do not spend the Platform API budget.
	addonID string
	// secrets are the revealed values this request carries. They, and the
	// client's own secrets, are scrubbed from any text of Heroku's that
	// reaches an error.
	secrets []string
	// opaque keeps no text of the answer's in an error: no message, no
	// request id, no text of Go's about the connection, and only an error
	// id Heroku is known to send. A call to the config endpoints is always
	// opaque (quotesTheApp), and so is a token refresh made for one: a
	// front that saw an app's live config may quote it in any of them.
	opaque bool
}

// TransportError is a call that got no HTTP response: a connection error, or
// a timeout of the call itself while the caller's context was still live.
type TransportError struct {
	Endpoint string
	Err      error
	// text is Err's text as Error shows it, the call's secrets removed:
	// Go's HTTP client quotes what the server sent when it cannot parse
	// it (a malformed header line), and a server may echo a token.
	text string
}

// Error names the endpoint and the cause; the cause never holds the URL,
// nor a secret the call carried, nor a control character.
func (e *TransportError) Error() string {
	text := e.text
	if text == "" && e.Err != nil {
		text = newTransportError(e.Endpoint, e.Err, nil, false).text
	}
	return fmt.Sprintf("heroku %s: %s", e.Endpoint, text)
}

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// do sends c through the Limiter and, for a config update, the caller's
// BeforeSend hook, and returns the body of a 2xx response, or
// a typed error for anything else.
func (c *Client) do(ctx context.Context, cl call) ([]byte, error) {
	if cl.addonID != "" && c.limiter != nil {
		if err := c.limiter.Wait(ctx, cl.addonID); err != nil {
			return nil, fmt.Errorf("heroku %s: limiter: %w", cl.endpoint, err)
		}
	}
	if err := beforeSend(ctx, cl.endpoint); err != nil {
		return nil, err
	}
	start := time.Now()
	secrets := slices.Concat(cl.secrets, []string{c.clientSecret.Reveal(), c.v1Password.Reveal()})
	opaque := cl.opaque || quotesTheApp(cl.endpoint)
	resp, err := c.send(ctx, cl)
	if err == nil && resp.StatusCode < 200 {
		// "101 Switching Protocols": Go hands the connection itself over as
		// the body, which neither the client's timeout nor ctx ends. No
		// answer of Heroku's: a change it may or may not have applied.
		_ = resp.Body.Close()
		err = errSwitchedProtocols
	}
	if err != nil {
		c.report(cl, 0, -1, start)
		return nil, transportError(ctx, cl.endpoint, err, secrets, opaque)
	}
	// Reading the body ends with ctx too, whatever the transport does.
	defer context.AfterFunc(ctx, func() { _ = resp.Body.Close() })()
	defer drainClose(resp.Body)
	remaining := parseRemaining(resp.Header)
	c.report(cl, resp.StatusCode, remaining, start)
	if cl.addonID != "" && c.limiter != nil {
		c.limiter.Observe(cl.addonID, remaining, resp.StatusCode)
	}
	if err := responseError(resp, cl.endpoint, opaque, c.now(), secrets); err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" || mt == "application/xhtml+xml" {
		// Heroku's APIs answer JSON: a page is some other host's (a
		// HEROKU_API_URL or HEROKU_ID_URL naming it, a proxy), whatever
		// its status.
		return nil, fmt.Errorf("heroku %s: a 2xx page (%s): %w", cl.endpoint, mt, ErrUnexpectedAnswer)
	}
	b, err := readBody(resp, cl.endpoint, secrets, opaque)
	if err != nil && (cl.endpoint == EndpointPatchConfig || cl.endpoint == EndpointV1Put) {
		// A 2xx to a change whose body cannot be read (the connection
		// reset halfway, a body past the limit) proves nothing of the
		// change: it may have landed. Asked again, it would change the
		// config again, and answer the same.
		return nil, fmt.Errorf("%w: a 2xx whose body could not be read (%w)", ErrUnexpectedAnswer, err)
	}
	return b, err
}

// errSwitchedProtocols is a 1xx final answer, which no Heroku API gives.
var errSwitchedProtocols = errors.New("an informational (1xx) answer, switching protocols, instead of an HTTP answer")

// send builds and sends the request.
func (c *Client) send(ctx context.Context, cl call) (*http.Response, error) {
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, cl.url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.userAgent)
	if cl.contentType != "" {
		req.Header.Set("Content-Type", cl.contentType)
	}
	if cl.authorize != nil {
		cl.authorize(req)
	}
	return c.http.Do(req)
}

// report tells the observer about a finished call.
func (c *Client) report(cl call, status, remaining int, start time.Time) {
	if c.observe == nil {
		return
	}
	c.observe(CallInfo{Endpoint: cl.endpoint, Status: status, Remaining: remaining, Duration: time.Since(start)})
}

// transportError wraps a failed send. When the caller's context has ended,
// the context's error is returned (wrapped) instead, so Classify can tell a
// call that timed out from a caller that gave up. The URL is dropped: only
// the endpoint name identifies the call.
func transportError(ctx context.Context, endpoint string, err error, secrets []string, opaque bool) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("heroku %s: %w", endpoint, ctxErr)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return newTransportError(endpoint, err, secrets, opaque)
}

// newTransportError is err of a call to endpoint, its text made safe to
// show: the call's secrets removed, printable, clipped. The text of an
// answer Go's HTTP client could not parse (a malformed status or header
// line, a Transfer-Encoding or Content-Length it does not take) quotes what
// the server sent, which may echo what the call sent in a form no scrubber
// of whole values finds (the V1 password inside the base64 of its Basic
// authorization, a value Go- or JSON-escaped): no such text is kept. Go
// quotes what it stumbled on, and a dial, TLS or timeout error quotes
// nothing, so a text with a quote in it is one of those. An opaque call's
// error keeps none of Go's text, which may still quote the server
// unquoted (the names a TLS certificate is valid for, a proxy's answer to
// CONNECT): only what kind of failure it was (opaqueCause).
func newTransportError(endpoint string, err error, secrets []string, opaque bool) *TransportError {
	if opaque {
		cause := newOpaqueCause(err)
		return &TransportError{Endpoint: endpoint, Err: cause, text: cause.Error()}
	}
	text := err.Error()
	if strings.Contains(text, "malformed") || strings.Contains(text, `"`) {
		text = "the answer is not HTTP that Go reads (what it said is not kept)"
	}
	return &TransportError{Endpoint: endpoint, Err: err,
		text: secret.Clip(printable.Text(scrub(text, secrets)), maxMessageLen)}
}

// readBody reads a successful response with a size limit.
func readBody(resp *http.Response, endpoint string, secrets []string, opaque bool) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, newTransportError(endpoint, err, secrets, opaque)
	}
	if len(b) > maxBodyBytes {
		return nil, fmt.Errorf("heroku %s: response body exceeds %d bytes", endpoint, maxBodyBytes)
	}
	if cutShort(resp, b) {
		return nil, newTransportError(endpoint, io.ErrUnexpectedEOF, secrets, opaque)
	}
	return b, nil
}

// cutShort reports whether b, resp's whole body, is JSON the connection
// closed in the middle of. An HTTP/1 answer with neither a Content-Length
// nor chunks ends where its connection closes, so Go reads one cut short
// as whole, where a Content-Length or a chunk left unfinished says it was
// cut (io.ErrUnexpectedEOF). Every answer of Heroku's is JSON: one that
// stops within a value is an answer lost on the way, as one reset halfway
// is, not an answer that is not Heroku's.
func cutShort(resp *http.Response, b []byte) bool {
	if resp.ProtoMajor != 1 || resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 || resp.Uncompressed {
		return false
	}
	var v json.RawMessage
	return errors.Is(json.NewDecoder(bytes.NewReader(b)).Decode(&v), io.ErrUnexpectedEOF)
}

// drainClose reads a little of what is left so the connection can be
// reused, then closes the body.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// parseRemaining reads RateLimit-Remaining, or -1 when absent or malformed.
func parseRemaining(h http.Header) int {
	n, err := strconv.Atoi(h.Get("RateLimit-Remaining"))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// opaqueCause is an opaque call's failed send: the kind of failure, none
// of its text. It is a timeout, for errors.Is and net.Error's Timeout,
// when the send's was.
type opaqueCause struct {
	kind    string
	timeout bool
}

func newOpaqueCause(err error) *opaqueCause {
	var netErr net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout()
	var op *net.OpError
	var cert *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	var alert tls.AlertError
	kind := "the connection failed"
	switch {
	case timeout:
		kind = "no answer within the call's timeout"
	case errors.As(err, &cert), errors.As(err, &rec), errors.As(err, &alert):
		kind = "the TLS handshake failed"
	case errors.As(err, &op) && op.Op == "dial":
		kind = "could not connect"
	}
	return &opaqueCause{kind: kind + " (what it said is not kept: an answer to a config call may quote an app's)", timeout: timeout}
}

func (e *opaqueCause) Error() string { return e.kind }

// Timeout reports whether the send timed out, as net.Error does.
func (e *opaqueCause) Timeout() bool { return e.timeout }

// Temporary is net.Error's deprecated half: false, as Go's own errors say.
func (e *opaqueCause) Temporary() bool { return false }

// Is makes a timed-out send context.DeadlineExceeded, as the send's own
// error was.
func (e *opaqueCause) Is(target error) bool { return e.timeout && target == context.DeadlineExceeded }
