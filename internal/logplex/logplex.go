// Package logplex writes short notices into a customer app's log stream
// through the log_input_url Heroku hands an add-on at provisioning
// (Heroku Dev Center, "Writing to Application Logs as an Add-on Partner"):
// an HTTP POST of octet-counted RFC 5424 syslog frames, Content-Type
// application/logplex-1, the URL's token as basic auth.
//
// Writing is best effort (README, "Holds: revocation that waits for
// disuse"): a short timeout, no retry, a counted failure, and an error that
// never names the URL, whose token is a secret (I5). The URL comes from a
// partner's registration, so a write never connects to an internal address
// (IsInternalAddress), whatever the URL's host name resolves to.
package logplex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// ContentType is the media type of a logplex input body.
const ContentType = "application/logplex-1"

// DefaultTimeout bounds one write: a log endpoint that hangs never holds up
// a rotation for longer.
const DefaultTimeout = 3 * time.Second

// maxLine bounds one line; Heroku keeps lines short too.
const maxLine = 512

// ErrWrite is every error Send returns: the endpoint's address and answer
// are never repeated. A write refused before connecting is also
// ErrRefusedAddress or ErrPlainHTTP.
var ErrWrite = errors.New("logplex: write failed")

// ErrPlainHTTP is the reason Send gives, beside ErrWrite, for an http URL
// that names no local stand-in (WithLocalStandIn): nothing is sent, since
// the URL's token would cross the network in clear, or reach a port of this
// machine that is not the stand-in's.
var ErrPlainHTTP = errors.New("log input URL is http to a host other than the local Heroku stand-in: refused")

// Frame returns one octet-counted syslog frame for msg at t, from the
// "app[rekey]" source, as Heroku's example shows: "<len> <190>1 time host
// app procid - - msg".
func Frame(t time.Time, msg string) []byte {
	msg = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, msg)
	if len(msg) > maxLine {
		msg = msg[:maxLine]
	}
	syslog := "<190>1 " + t.UTC().Format(time.RFC3339Nano) + " host app rekey - - " + msg
	return []byte(fmt.Sprintf("%d %s", len(syslog), syslog))
}

// Client posts lines to log_input_urls. It is safe for concurrent use.
type Client struct {
	// http refuses internal and loopback addresses; local lets loopback
	// through, for a URL that names a local stand-in (standIns) over http.
	http, local *http.Client
	standIns    []string
	userAgent   string
	now         func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithLocalStandIn lets the Client post over http to each host:port
// (LocalStandIn's form), a local Heroku stand-in on loopback. Without it
// every http URL is refused, and no URL reaches this machine.
func WithLocalStandIn(hostports ...string) Option {
	return func(c *Client) { c.standIns = append(c.standIns, hostports...) }
}

// NewClient returns a Client whose requests time out after timeout (0:
// DefaultTimeout), never follow a redirect, never go through a proxy, and
// never connect to an internal address (IsInternalAddress) or, unless the
// URL is http to a local stand-in (WithLocalStandIn), to this machine.
func NewClient(timeout time.Duration, opts ...Option) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &Client{userAgent: "rekey (logplex notices)", now: time.Now,
		http: newHTTPClient(timeout, false), local: newHTTPClient(timeout, true)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Send posts lines to u in one request. Any failure is ErrWrite; one
// refused before connecting is ErrRefusedAddress as well.
func (c *Client) Send(ctx context.Context, u secret.String, lines ...string) error {
	target, err := url.Parse(u.Reveal())
	if err != nil || (target.Scheme != "https" && target.Scheme != "http") || target.Host == "" {
		return ErrWrite
	}
	// Loopback is reached only as the registry lets it be named, http to a
	// local stand-in's address, which is how tests and rekey dev serve the
	// fake Heroku (127.0.0.1). Any other http URL, one stored before that
	// rule included, is refused, and a name that merely resolves to
	// loopback is refused when dialled.
	hc := c.http
	if target.Scheme == "http" {
		if !IsLocalStandIn(target, c.standIns) {
			return fmt.Errorf("%w: %w", ErrWrite, ErrPlainHTTP)
		}
		hc = c.local
	}
	var body bytes.Buffer
	for _, l := range lines {
		body.Write(Frame(c.now(), l))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), &body)
	if err != nil {
		return ErrWrite
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := hc.Do(req)
	if errors.Is(err, ErrRefusedAddress) {
		return fmt.Errorf("%w: %w", ErrWrite, ErrRefusedAddress)
	}
	if err != nil {
		return ErrWrite
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ErrWrite
	}
	return nil
}

// Parse splits a logplex input body into its messages (the part after the
// structured data of each frame). The fake Heroku and tests use it.
func Parse(body []byte) ([]string, error) {
	var out []string
	for len(body) > 0 {
		sp := bytes.IndexByte(body, ' ')
		var n int
		if sp <= 0 {
			return out, errors.New("logplex: no octet count")
		}
		if _, err := fmt.Sscanf(string(body[:sp]), "%d", &n); err != nil || n <= 0 || sp+1+n > len(body) {
			return out, errors.New("logplex: bad octet count")
		}
		frame := string(body[sp+1 : sp+1+n])
		body = body[sp+1+n:]
		if _, msg, ok := strings.Cut(frame, " - - "); ok {
			out = append(out, msg)
		}
	}
	return out, nil
}
