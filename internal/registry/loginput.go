package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// checkLogInput refuses a log_input_url that is not an absolute https URL
// (http only to this machine, for a local Heroku stand-in): Heroku sends
// https, and the URL carries a token that plain http would show to the
// network, to a host the workers would post to blindly. The sentence never
// repeats the value.
func checkLogInput(u secret.String) error {
	if u.IsZero() {
		return nil
	}
	if len(u.Reveal()) > maxLogInputLen {
		return &InputError{fmt.Errorf("log_input_url is longer than %d bytes: Heroku's is a logplex URL of about 100", maxLogInputLen)}
	}
	p, err := url.Parse(u.Reveal())
	if err != nil || p.Host == "" || p.Scheme != "https" && (p.Scheme != "http" || !issuer.IsLoopback(p.Hostname())) {
		return &InputError{errors.New("log_input_url must be an absolute https URL, as Heroku sends it at provisioning " +
			"(http only to localhost)")}
	}
	if internalAddress(p.Hostname()) {
		return &InputError{errors.New("log_input_url names a private, link-local, unspecified or multicast address: " +
			"Heroku's names its logplex host, and a worker would post the URL's token inside the partner's network")}
	}
	return nil
}

// maxLogInputLen bounds a log_input_url: it is kept sealed for as long as
// the instance lives and read at every notice.
const maxLogInputLen = 2048

// internalAddress reports whether host is an IP address a worker must not
// post to on a registration's word: the cloud metadata address and the
// rest of link-local, private ranges, the unspecified address (which
// reaches this machine) and multicast. Loopback is left to the scheme
// check above, for a local Heroku stand-in. A host name is not resolved
// here: Heroku's log_input_url names one, and what it resolves to later is
// the network's to say.
func internalAddress(host string) bool {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}

// saveLogInput stores the instance's log_input_url, sealed (I5). A
// registration without one keeps the one stored before.
func (r *Registry) saveLogInput(ctx context.Context, in Input) error {
	if in.LogInputURL.IsZero() {
		return nil
	}
	return r.store.SaveLogInput(ctx, in.ID, in.LogInputURL)
}
