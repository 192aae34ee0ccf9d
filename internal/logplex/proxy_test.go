package logplex

import (
	"net/http"
	"testing"
)

// TestClientTakesNoProxyFromTheEnvironment pins that the transports dial
// the log host themselves: through a proxy the Control hook would see only
// the proxy's address and the proxy would connect wherever the name points.
// HTTP_PROXY cannot be set here to show it, since net/http reads the
// environment once per process and never proxies loopback.
func TestClientTakesNoProxyFromTheEnvironment(t *testing.T) {
	c := NewClient(0)
	for name, hc := range map[string]*http.Client{"http": c.http, "local": c.local} {
		tr, ok := hc.Transport.(*http.Transport)
		if !ok || tr.Proxy != nil {
			t.Errorf("%s client: transport %T takes a proxy", name, hc.Transport)
		}
	}
}
