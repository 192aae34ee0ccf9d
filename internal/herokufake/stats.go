package herokufake

import (
	"fmt"
	"slices"
	"time"
)

// Endpoint names a Heroku endpoint the fake counts calls to.
type Endpoint string

// The endpoints. The names never change; tests and /_fake/stats use them.
const (
	GetConfig   Endpoint = "get_config"   // GET /addons/{id}/config
	PatchConfig Endpoint = "patch_config" // PATCH /addons/{id}/config
	GetAddon    Endpoint = "get_addon"    // GET /addons/{id}
	RateLimits  Endpoint = "rate_limits"  // GET /account/rate-limits
	OAuthToken  Endpoint = "oauth_token"  // POST /oauth/token
	V1Put       Endpoint = "v1_put"       // PUT /vendor/apps/{heroku_id}
	V1Get       Endpoint = "v1_get"       // GET /vendor/apps/{heroku_id}
	Unknown     Endpoint = "unknown"      // any other path
)

// Call is one counted request. Status is 0 when the fake never answered
// (Hang, or a client that gave up during a delay).
type Call struct {
	Endpoint Endpoint
	Status   int
	At       time.Time // when the request arrived, by the fake's clock
	// Addon is the id of the add-on the request's path names (by id or name
	// in V3, by heroku_id in V1), when the fake knows it; else empty.
	Addon string
}

// CallKey groups calls in Stats.
type CallKey struct {
	Endpoint Endpoint
	Status   int
}

// String reads like "patch_config 200".
func (k CallKey) String() string { return fmt.Sprintf("%s %d", k.Endpoint, k.Status) }

// Stats sums the calls made so far.
type Stats struct {
	Calls       map[CallKey]int
	Total       int
	RateLimited int // calls answered 429, real or scripted
}

// record counts c; ref is the add-on reference in the request's path.
func (f *Fake) record(c Call, ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.names[ref]; ok {
		ref = id
	} else if id, ok := f.herokuIDs[ref]; ok {
		ref = id
	}
	if _, ok := f.addons[ref]; ok {
		c.Addon = ref
	}
	f.calls = append(f.calls, c)
}

// Stats returns a snapshot of the call counts. Safe for concurrent use.
func (f *Fake) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{Calls: map[CallKey]int{}, Total: len(f.calls)}
	for _, c := range f.calls {
		s.Calls[CallKey{c.Endpoint, c.Status}]++
		if c.Status == 429 {
			s.RateLimited++
		}
	}
	return s
}

// Calls returns every counted call in arrival order, optionally only those
// to the given endpoints.
func (f *Fake) Calls(endpoints ...Endpoint) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if len(endpoints) == 0 || slices.Contains(endpoints, c.Endpoint) {
			out = append(out, c)
		}
	}
	return out
}

// CallTimes returns when each counted call arrived, optionally only calls to
// the given endpoints, in arrival order.
func (f *Fake) CallTimes(endpoints ...Endpoint) []time.Time {
	calls := f.Calls(endpoints...)
	out := make([]time.Time, len(calls))
	for i, c := range calls {
		out[i] = c.At
	}
	return out
}

// MaxInWindow returns the most calls (to the given endpoints, or all) that
// arrived within any span of length window, ends included.
func (f *Fake) MaxInWindow(window time.Duration, endpoints ...Endpoint) int {
	times := f.CallTimes(endpoints...)
	slices.SortFunc(times, time.Time.Compare)
	best, lo := 0, 0
	for hi, t := range times {
		for t.Sub(times[lo]) > window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}
