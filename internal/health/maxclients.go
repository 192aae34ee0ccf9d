package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// fullReply is what Redis writes on a connection it accepts past its
// maxclients, before it closes it, unasked.
var fullReply = []byte("-ERR max number of clients reached")

// fullWait bounds how long MaxClientsHint waits for Redis to speak first:
// Redis writes fullReply as it accepts, and says nothing otherwise.
const fullWait = 500 * time.Millisecond

// MaxClientsHint says, after a failed connection to the Redis at addr,
// whether Redis refuses new connections for having reached its maxclients
// (on Heroku Key-Value Store, the plan's connection limit), and what to
// lower; "" when it does not.
//
// go-redis never shows Redis's reason: Redis writes it and closes the
// connection as it accepts it, and go-redis, writing its HELLO to the
// closed connection, fails with "write: broken pipe" or "connection reset
// by peer", which reads as Redis being down. So the probe connects once,
// sends nothing and reads what Redis says first. Over TLS Redis cannot
// write its reason before the handshake, and closes the connection
// without a word: a handshake that ends there, on a server that accepted
// the connection, is most often the same limit, and the hint says so.
func MaxClientsHint(ctx context.Context, addr string, tlsAsked bool) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fullWait)
	defer cancel()
	const what = "(on Heroku Key-Value Store, the plan's connection limit), taken by rekey's processes and any other " +
		"client; lower REKEY_REDIS_POOL_SIZE on rekey's web, worker and clock processes, or run fewer of them, until " +
		"they fit with room for a one-off command and a deploy's new dynos (README, \"Redis connections\"), or move to " +
		"a plan with more connections"
	switch saysFull(ctx, addr, tlsAsked) {
	case full:
		return "the Redis at " + addr + " refuses new connections: it holds as many as its maxclients allows " + what
	case closedHandshake:
		return "the Redis at " + addr + " accepts connections but closes them before the TLS handshake: most often it " +
			"holds as many as its maxclients allows " + what
	}
	return ""
}

// fullness is what saysFull made of a server's first words.
type fullness int

const (
	notFull fullness = iota
	full
	// closedHandshake is a TLS server that closed the connection before
	// the handshake, as Redis does past its maxclients.
	closedHandshake
)

// saysFull connects to the server at addr and reads what it says unasked.
func saysFull(ctx context.Context, addr string, tlsAsked bool) fullness {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return notFull
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if tlsAsked {
		// The server's name goes in the hello, as go-redis's tls.Dial sends
		// it: a TLS front routing by name (one port for many databases)
		// closes a hello without one, which read as maxclients.
		host, _, _ := net.SplitHostPort(addr)
		tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // nothing is sent: the probe only reads what the server says first.
		err := tc.HandshakeContext(ctx)
		if header, ok := errors.AsType[tls.RecordHeaderError](err); ok && bytes.Equal(header.RecordHeader[:], fullReply[:5]) {
			return full // a server that writes its reason in the clear
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return closedHandshake
		}
		if err != nil {
			return notFull
		}
		conn = tc
	}
	buf := make([]byte, len(fullReply))
	n, _ := io.ReadFull(conn, buf)
	if bytes.Equal(buf[:n], fullReply) {
		return full
	}
	return notFull
}

// MaxClientsError is a failed ping to a Redis that refuses new connections
// for having reached its maxclients (MaxClientsHint): the redis_down line
// gives Hint as its detail.
type MaxClientsError struct {
	Err  error
	Hint string
}

func (e *MaxClientsError) Error() string { return e.Err.Error() }
func (e *MaxClientsError) Unwrap() error { return e.Err }
