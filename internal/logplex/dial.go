package logplex

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrRefusedAddress is the reason Send gives, beside ErrWrite, when every
// address the log input host resolved to was refused before connecting. It
// names no host: the URL carries a token.
var ErrRefusedAddress = errors.New("log input host resolves to a private, link-local, loopback, " +
	"unspecified or multicast address: refused")

// IsInternalAddress reports whether ip is an address a worker must not post
// a log_input_url's token to on a registration's word: the cloud metadata
// address and the rest of link-local, private ranges, the unspecified
// address (which reaches this machine) and multicast. An IPv4 address
// written as IPv6 counts as itself.
//
// Loopback is not among them, because whether this machine may be reached
// depends on the URL: a local Heroku stand-in is served over http on
// 127.0.0.1. The registry checks a log_input_url's IP literal with this
// predicate at registration, and the Client's dialer checks every address a
// host name resolved to when it connects, so the two cannot drift apart.
//
// Two ranges Go's predicates miss count too: the shared address space
// 100.64.0.0/10 (RFC 6598: carrier-grade NAT, tailnets, and Alibaba Cloud's
// metadata service at 100.100.100.200), and NAT64: an address in the
// well-known prefix 64:ff9b::/96, which a NAT64 gateway on an IPv6-only
// host translates to the IPv4 address it embeds, counts as that address,
// loopback included (the gateway's own), and the local-use prefix
// 64:ff9b:1::/48 (RFC 8215), translated only inside the network, counts as
// internal whatever it embeds.
func IsInternalAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		return v4.IsLoopback() || IsInternalAddress(v4)
	}
	return ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || sharedAddressSpace.Contains(ip) ||
		localNAT64.Contains(ip)
}

// sharedAddressSpace is RFC 6598's 100.64.0.0/10.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// nat64 is the well-known NAT64 prefix (RFC 6052), the IPv4 address in
// its last 32 bits; localNAT64 is the local-use one (RFC 8215).
var nat64, localNAT64 = netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48")

// refuseAddresses returns a net.Dialer Control hook that refuses every
// internal address, and loopback too unless allowLoopback. The hook runs
// for each connection attempt with the address a host name resolved to,
// which no check of the URL's text can see: a partner's DNS name may point
// at 169.254.169.254 or 10.0.0.5. An address it cannot read is refused
// rather than trusted.
func refuseAddresses(allowLoopback bool) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return ErrRefusedAddress
		}
		ip := ap.Addr().Unmap()
		if IsInternalAddress(ip) || ip.IsLoopback() && !allowLoopback {
			return ErrRefusedAddress
		}
		return nil
	}
}

// newHTTPClient returns the http.Client behind a Client: requests time out
// after timeout, never follow a redirect, and connect only to addresses
// refuseAddresses lets through.
//
// The transport takes no proxy, whatever HTTP_PROXY says. Through a proxy
// the dialer would see only the proxy's address, and the proxy would
// resolve the log host and connect wherever it points, so the refusal
// would guard nothing; a proxy on a private address would also have every
// write refused. Heroku's logplex is on the public internet, reached
// directly.
func newHTTPClient(timeout time.Duration, allowLoopback bool) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: refuseAddresses(allowLoopback)}
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: timeout,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}
