package health

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// probeTimeout bounds TLSMismatch's one connection.
const probeTimeout = 2 * time.Second

// TLSMismatch says, after a failed connection to the Redis at addr, whether
// REDIS_URL's scheme disagrees with what that server speaks, and what to
// change; "" when it does not, or when nothing answers there.
//
// Neither mistake fails with a word of why. rediss:// to a Redis without
// TLS sends a TLS hello, which Redis reads as the start of a command that
// never ends: the client times out. redis:// to a Redis that takes TLS only
// sends a command, which the server takes for a broken handshake: the
// client reads EOF. So the probe tries the other way once: a plain PING
// when TLS was asked for, a TLS handshake when it was not.
func TLSMismatch(ctx context.Context, addr string, tlsAsked bool) string {
	// The failed ping may have used up ctx's deadline; the probe has its
	// own, short one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	defer cancel()
	if tlsAsked {
		if answersPlain(ctx, addr) {
			return "REDIS_URL asks for TLS (rediss://), but the Redis at " + addr +
				" answers without TLS: use redis://, or the server's TLS port"
		}
		return ""
	}
	if answersTLS(ctx, addr) {
		return "the Redis at " + addr + " takes TLS connections only: use rediss:// " +
			"(on Heroku, the add-on's REDIS_URL as it is)"
	}
	return ""
}

// answersPlain reports whether a server at addr answers a plain PING the
// way Redis does: a simple string ("+PONG") or an error ("-NOAUTH ...").
func answersPlain(ctx context.Context, addr string) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	var first [1]byte
	if _, err := conn.Read(first[:]); err != nil {
		return false
	}
	return first[0] == '+' || first[0] == '-'
}

// answersTLS reports whether a server at addr completes a TLS handshake.
// The certificate is not checked: the probe asks what the server speaks,
// and sends nothing over the connection.
func answersTLS(ctx context.Context, addr string) bool {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // nothing is sent: the probe only asks whether the server speaks TLS.
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// WrongTLSError is a failed ping to a Redis whose TLS REDIS_URL's scheme
// disagrees with (TLSMismatch): the redis_down line gives Hint as its
// detail.
type WrongTLSError struct {
	Err  error
	Hint string
}

func (e *WrongTLSError) Error() string { return e.Err.Error() }
func (e *WrongTLSError) Unwrap() error { return e.Err }

// PingTLSChecked wraps a ping so that a failure against a server whose TLS
// REDIS_URL's scheme disagrees with comes back as a *WrongTLSError, and one
// against a server at its maxclients as a *MaxClientsError.
func PingTLSChecked(ping func(context.Context) error, addr string, tlsAsked bool) func(context.Context) error {
	return func(ctx context.Context) error {
		err := ping(ctx)
		if err == nil || ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return err
		}
		if hint := TLSMismatch(ctx, addr, tlsAsked); hint != "" {
			return &WrongTLSError{Err: err, Hint: hint}
		}
		if hint := MaxClientsHint(ctx, addr, tlsAsked); hint != "" {
			return &MaxClientsError{Err: err, Hint: hint}
		}
		return err
	}
}
