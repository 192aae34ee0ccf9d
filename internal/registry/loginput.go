package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/secret"
)

// checkLogInput refuses a log_input_url that is not an absolute https URL
// (http only to a local Heroku stand-in's host:port, WithLocalStandIn):
// Heroku sends https, and the URL carries a token that plain http would
// show to the network, to a host the workers would post to blindly; over
// http to another port of this machine, a worker would post to whatever
// listens there. An IP literal the
// workers must not post to (logplex.IsInternalAddress) is refused here,
// where the partner hears why; a host name is not resolved, since what it
// resolves to is the network's to say later, and the logplex client's
// dialer refuses the same addresses at every connection. The sentence
// never repeats the value.
func (r *Registry) checkLogInput(u secret.String) error {
	if u.IsZero() {
		return nil
	}
	if len(u.Reveal()) > maxLogInputLen {
		return &InputError{fmt.Errorf("log_input_url is longer than %d bytes: Heroku's is a logplex URL of about 100", maxLogInputLen)}
	}
	p, err := url.Parse(u.Reveal())
	if err != nil || p.Host == "" || p.Scheme != "https" && !logplex.IsLocalStandIn(p, r.logStandIns) {
		return &InputError{errors.New("log_input_url must be an absolute https URL, as Heroku sends it at provisioning " +
			"(http only to the local Heroku stand-in that HEROKU_API_URL names)")}
	}
	if ip, err := netip.ParseAddr(p.Hostname()); err == nil && logplex.IsInternalAddress(ip) {
		return &InputError{errors.New("log_input_url names a private, link-local, unspecified or multicast address: " +
			"Heroku's names its logplex host, and a worker would post the URL's token inside the partner's network")}
	}
	if p.Scheme == "https" && namesThisMachine(p.Hostname()) {
		return &InputError{errors.New("log_input_url names this machine (loopback, localhost, or an IP address written " +
			"as a number), where no worker posts: Heroku's names its logplex host")}
	}
	return nil
}

// namesThisMachine reports whether host is a loopback address, localhost
// (or a name under .localhost, RFC 6761), or a numeric form of an IPv4
// address that only some resolvers read (2130706433, 0x7f000001, 127.1):
// the logplex dialer refuses each when it connects, so a registration that
// names one would have every notice fail unseen.
func namesThisMachine(host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().IsLoopback()
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for label := range strings.SplitSeq(host, ".") {
		if _, err := strconv.ParseUint(label, 0, 32); err != nil {
			return false
		}
	}
	return true
}

// maxLogInputLen bounds a log_input_url: it is kept sealed for as long as
// the instance lives and read at every notice.
const maxLogInputLen = 2048

// saveLogInput stores the instance's log_input_url, sealed (I5). A
// registration without one keeps the one stored before.
func (r *Registry) saveLogInput(ctx context.Context, in Input) error {
	if in.LogInputURL.IsZero() {
		return nil
	}
	return r.store.SaveLogInput(ctx, in.ID, in.LogInputURL)
}
