package logplex_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/secret"
)

// TestSendRefusesInternalAddressesBeforeConnecting posts, over real
// dialing, to log_input_urls whose host is or resolves to an address a
// worker must not reach. The registry cannot see what a host name resolves
// to, so the dialer's Control hook must refuse each address before a
// connection is made, with ErrRefusedAddress, and the error must not repeat
// the URL's token. A listener on loopback proves that nothing connected to
// it: https to localhost (a name resolving to this machine), to 127.0.0.1
// and to 0.0.0.0 would each reach it.
func TestSendRefusesInternalAddressesBeforeConnecting(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	const token = "logplex-token-5f3a"
	cases := []struct{ name, url string }{
		{"a private address", "https://token:" + token + "@10.255.255.1:9/logs"},
		{"an IPv4-mapped private address", "https://token:" + token + "@[::ffff:192.168.1.1]:9/logs"},
		{"the unspecified address", fmt.Sprintf("https://token:%s@0.0.0.0:%d/logs", token, port)},
		{"a loopback address over https", fmt.Sprintf("https://token:%s@127.0.0.1:%d/logs", token, port)},
		{"a host name resolving to loopback", fmt.Sprintf("https://token:%s@localhost:%d/logs", token, port)},
	}
	c := logplex.NewClient(time.Second)
	for _, tc := range cases {
		err := c.Send(context.Background(), secret.New(tc.url), "never sent")
		if !errors.Is(err, logplex.ErrRefusedAddress) || !errors.Is(err, logplex.ErrWrite) {
			t.Errorf("%s: Send = %v, want ErrWrite and ErrRefusedAddress", tc.name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "refused") || strings.Contains(msg, token) {
			t.Errorf("%s: error %q should say refused and never quote the token", tc.name, msg)
		}
	}
	if connected(l) {
		t.Error("a refused write connected to this machine")
	}
}

// connected reports whether anything connected to l. A connection made
// would wait in the listener's backlog, and Accept returns it at once; the
// deadline only ends the wait for none.
func connected(l net.Listener) bool {
	l.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	conn, err := l.Accept()
	if err == nil {
		conn.Close()
	}
	return err == nil
}

// TestSendReachesALocalStandInOverHTTP writes to a fake log endpoint on
// 127.0.0.1, as tests and `rekey dev` serve the fake Heroku: http to the
// stand-in's own address is the one way loopback stays open.
func TestSendReachesALocalStandInOverHTTP(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	c := logplex.NewClient(time.Second, logplex.WithLocalStandIn(logplex.LocalStandIn(srv.URL),
		logplex.LocalStandIn(fmt.Sprintf("http://LocalHost:%d", port))))
	for _, u := range []string{
		fmt.Sprintf("http://token:t@127.0.0.1:%d/logs", port),
		fmt.Sprintf("http://token:t@localhost:%d/logs", port),
	} {
		if err := c.Send(context.Background(), secret.New(u), "hello"); err != nil {
			t.Errorf("Send to %s: %v", u, err)
		}
	}
	if n := got.Load(); n != 2 {
		t.Errorf("the local stand-in got %d writes, want 2", n)
	}
}

// TestSendRefusesPlainHTTPBesideTheStandIn plays a registration whose
// log_input_url names another port of this machine over http (a Redis, an
// admin endpoint, rekey's own web process), or a public host over http,
// or was stored before the registry refused such URLs. Only the stand-in's
// own host:port may be reached over http: every other is refused with
// ErrPlainHTTP before any connection, the error never quotes the token, and
// a listener on the other port sees nothing. A Client with no stand-in
// refuses the stand-in's URL too.
func TestSendRefusesPlainHTTPBesideTheStandIn(t *testing.T) {
	t.Parallel()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	t.Cleanup(srv.Close)
	const token = "logplex-token-77c1"
	otherPort := other.Addr().(*net.TCPAddr).Port
	srvPort := srv.Listener.Addr().(*net.TCPAddr).Port
	withStandIn := logplex.NewClient(time.Second, logplex.WithLocalStandIn(logplex.LocalStandIn(srv.URL)))
	cases := []struct {
		name string
		c    *logplex.Client
		url  string
	}{
		{"another loopback port", withStandIn, fmt.Sprintf("http://token:%s@127.0.0.1:%d/logs", token, otherPort)},
		{"the stand-in's port by another name", withStandIn, fmt.Sprintf("http://token:%s@localhost:%d/logs", token, srvPort)},
		{"loopback without a port", withStandIn, "http://token:" + token + "@127.0.0.1/logs"},
		{"the metadata address", withStandIn, "http://token:" + token + "@169.254.169.254/logs"},
		{"a public host", withStandIn, "http://token:" + token + "@1.us.logplex.io/logs"},
		{"the stand-in, to a client with none", logplex.NewClient(time.Second), srv.URL + "/logs"},
	}
	for _, tc := range cases {
		err := tc.c.Send(context.Background(), secret.New(tc.url), "never sent")
		if !errors.Is(err, logplex.ErrPlainHTTP) || !errors.Is(err, logplex.ErrWrite) {
			t.Errorf("%s: Send = %v, want ErrWrite and ErrPlainHTTP", tc.name, err)
			continue
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%s: error %q quotes the token", tc.name, err)
		}
	}
	if n := got.Load(); n != 0 {
		t.Errorf("the stand-in got %d writes from refused URLs", n)
	}
	if connected(other) {
		t.Error("a refused write connected to another port of this machine")
	}
}

// TestLocalStandInIsHTTPToLoopbackOnly pins which HEROKU_API_URL makes a
// stand-in: Heroku's own API, https or a remote host make none.
func TestLocalStandInIsHTTPToLoopbackOnly(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:5001":    "127.0.0.1:5001",
		"http://LOCALHOST:5001/":   "localhost:5001",
		"http://[::1]:5001":        "[::1]:5001",
		"http://127.0.0.1":         "127.0.0.1:80",
		"https://127.0.0.1:5001":   "",
		"https://api.heroku.com":   "",
		"http://heroku.example:80": "",
		"http://10.0.0.5:5001":     "",
		"::not a url":              "",
	} {
		if got := logplex.LocalStandIn(in); got != want {
			t.Errorf("LocalStandIn(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIsInternalAddressNamesTheRefusedRanges pins the predicate the
// registry and the dialer share; loopback is left to the URL's scheme.
func TestIsInternalAddressNamesTheRefusedRanges(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"169.254.169.254":    true,
		"10.0.0.5":           true,
		"172.16.0.1":         true,
		"192.168.1.1":        true,
		"fd00::7":            true,
		"fe80::1":            true,
		"::ffff:192.168.1.1": true,
		"0.0.0.0":            true,
		"::":                 true,
		"224.0.0.1":          true,
		"ff02::1":            true,
		"127.0.0.1":          false,
		"::1":                false,
		"54.243.1.2":         false,
		"2600:1f18::1":       false,
	} {
		if got := logplex.IsInternalAddress(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsInternalAddress(%s) = %v, want %v", addr, got, want)
		}
	}
}

// Addresses that IsPrivate and IsLinkLocalUnicast miss still reach inside the
// worker's network: the shared address space 100.64.0.0/10 (RFC 6598:
// carrier-grade NAT, Tailscale's tailnet, and Alibaba Cloud's metadata
// service at 100.100.100.200), and an IPv4 address embedded in a NAT64
// prefix (64:ff9b::/96, RFC 6052; 64:ff9b:1::/48, RFC 8215), which a NAT64
// gateway on an IPv6-only host (AWS's NAT gateway, for one) translates to
// the metadata address or a private one. Each must be refused before any
// connection, as the IPv4 address itself is.
func TestSendRefusesSharedAndTranslatedInternalAddresses(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{
		"100.100.100.200", "100.64.0.1", "100.127.255.254",
		"64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.5", "64:ff9b:1::a9fe:a9fe", "64:ff9b::7f00:1",
	} {
		if !logplex.IsInternalAddress(netip.MustParseAddr(addr)) {
			t.Errorf("IsInternalAddress(%s) = false, want true", addr)
		}
	}
	c := logplex.NewClient(500 * time.Millisecond)
	for _, u := range []string{
		"https://token:t@100.100.100.200/latest/meta-data/",
		"https://token:t@[64:ff9b::a9fe:a9fe]/latest/meta-data/",
	} {
		if err := c.Send(context.Background(), secret.New(u), "x"); !errors.Is(err, logplex.ErrRefusedAddress) {
			t.Errorf("Send to an internal address: %v, want ErrRefusedAddress", err)
		}
	}
	// Public addresses, and a NAT64 one embedding a public address, pass.
	for _, addr := range []string{"100.63.255.255", "100.128.0.1", "64:ff9b::36f3:102"} {
		if logplex.IsInternalAddress(netip.MustParseAddr(addr)) {
			t.Errorf("IsInternalAddress(%s) = true, want false", addr)
		}
	}
}
