package logplex

import (
	"net"
	"net/url"
	"strings"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A log_input_url reaches this machine only at a local Heroku stand-in's
// address: `rekey dev` and the tests serve the fake Heroku, its log input
// included, over http on loopback, and HEROKU_API_URL names it. Any other
// loopback port (a Redis, an admin endpoint, rekey's own web process) is
// refused: a registration names the URL, and a worker would post the
// URL's token and rekey's notice there.

// LocalStandIn returns the host:port of herokuURL when it is an http URL
// to loopback, the one address a log_input_url may name over http; "" for
// any other URL, Heroku's own among them.
func LocalStandIn(herokuURL string) string {
	u, err := url.Parse(herokuURL)
	if err != nil || u.Scheme != "http" || !issuer.IsLoopback(u.Hostname()) {
		return ""
	}
	return hostPort(u)
}

// IsLocalStandIn reports whether u is an http URL to one of the local
// stand-ins (host:port, as LocalStandIn returns them).
func IsLocalStandIn(u *url.URL, standIns []string) bool {
	if u.Scheme != "http" || !issuer.IsLoopback(u.Hostname()) {
		return false
	}
	hp := hostPort(u)
	for _, s := range standIns {
		if s != "" && strings.EqualFold(s, hp) {
			return true
		}
	}
	return false
}

// hostPort is u's host and port, the scheme's default port when u names
// none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
