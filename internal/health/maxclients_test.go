package health_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// sniFront runs a TLS-terminating front for the Redis at backend that
// routes by the name a client sends in its hello, as a TLS proxy serving
// several databases on one port does: a hello without a name gets the
// connection closed, without a word. It returns the address to dial as
// "localhost:port", so go-redis sends the name.
func sniFront(t *testing.T, backend string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if hello.ServerName == "" {
			_ = hello.Conn.Close() // no route: closed before the handshake
			return nil, errors.New("no server name")
		}
		return nil, nil
	}, Certificates: []tls.Certificate{cert}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c); _ = b.Close() }()
				_, _ = io.Copy(c, b)
			}()
		}
	}()
	return net.JoinHostPort("localhost", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}

// A Redis behind a TLS front that routes by server name (one port for
// many databases) is probed as go-redis reaches it, with the name: the
// maxclients probe once sent none, the front closed its handshake, and
// every failed ping, a wrong password included, was said to be "most
// often" Redis's maxclients in place of what to check. A Redis at its
// maxclients behind the same front is still named as such: the front
// relays Redis's reason after the handshake.
func TestTheMaxclientsProbeSendsTheServerName(t *testing.T) {
	own := redistest.StartServerAt(t, redistest.FreePort(t))
	if err := own.Client.ConfigSet(context.Background(), "requirepass", "right-pw").Err(); err != nil {
		t.Fatal(err)
	}
	front := sniFront(t, own.Addr)
	withTLS := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // the test's self-signed front.
	redisDown := func(t *testing.T, password string) string {
		t.Helper()
		c := redis.NewClient(&redis.Options{Addr: front, Password: password, TLSConfig: withTLS, MaxRetries: -1})
		defer c.Close()
		var logs lockedBuffer
		ping := health.PingTLSChecked(func(ctx context.Context) error { return c.Ping(ctx).Err() }, front, true)
		w, err := health.NewRedis(health.Params{Ping: ping, Logger: zerolog.New(&logs)})
		if err != nil {
			t.Fatal(err)
		}
		if w.Check(context.Background()) {
			t.Fatal("the ping succeeded")
		}
		return logs.String()
	}

	t.Run("wrong password", func(t *testing.T) {
		out := redisDown(t, "wrong-pw")
		if !strings.Contains(out, "refuses REDIS_URL's user or password") || strings.Contains(out, "maxclients") {
			t.Errorf("log = %s; want redis_down saying Redis refuses REDIS_URL's password, with no word of maxclients", out)
		}
	})
	t.Run("at maxclients", func(t *testing.T) {
		// Below the connections open: Redis keeps them and refuses any new one.
		if err := own.Client.ConfigSet(context.Background(), "maxclients", "1").Err(); err != nil {
			t.Fatal(err)
		}
		if out := redisDown(t, "right-pw"); !strings.Contains(out, "refuses new connections: it holds as many as its maxclients allows") {
			t.Errorf("log = %s; want redis_down naming Redis's maxclients", out)
		}
	})
}

// A Redis that hovers at its maxclients (the formation's pools holding
// all but the odd connection that closes and is taken again) refuses the
// probe one time and takes it the next. redis_full is said once, then at
// most every 10 minutes: a probe that got in between once made the next
// refusal a new first one, and a flood of library errors logged
// redis_full at every other ping.
func TestRedisFullIsSaidOnceWhileRedisHoversAtItsMaxclients(t *testing.T) {
	own := redistest.StartServerAt(t, redistest.FreePort(t))
	ctx := context.Background()
	var logs lockedBuffer
	w, err := health.NewRedis(health.Params{Ping: func(ctx context.Context) error { return own.Client.Ping(ctx).Err() },
		Full:   func(ctx context.Context) string { return health.MaxClientsHint(ctx, own.Addr, false) },
		Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		room := []string{"1", "10000"}[i%2] // full (below the connections open), then room, and so on
		if err := own.Client.ConfigSet(ctx, "maxclients", room).Err(); err != nil {
			t.Fatal(err)
		}
		w.LibraryError() // asynq: "cannot subscribe to cancelation channel: write: broken pipe"
		if !w.Check(ctx) {
			t.Fatalf("the ping over the held connection failed: %s", logs.String())
		}
	}
	if n := strings.Count(logs.String(), `"redis_full"`); n != 1 {
		t.Errorf("redis_full was logged %d times over refusals a second apart, want once:\n%s", n, logs.String())
	}
}
