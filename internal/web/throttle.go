package web

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A client that presents maxFailures different wrong API tokens or
// operators' passwords within failWindow of its first failure is answered 429
// with Retry-After, whatever it presents, until that window ends: the
// operators' password may be as short as 8 characters, and without a
// limit it could be guessed as fast as the dyno answers. Refusing the
// right credential too keeps a 429 from telling which guesses were wrong.
// The count is per client address, so an attacker cannot lock out
// operators elsewhere. Requests without credentials are not counted: a
// browser asks once without them before it shows the password prompt.
// Nor is the same wrong credential sent again: a guess is a new one each
// time, whereas a producer or a browser tab left on a token or password
// that was just rotated repeats one, and would otherwise lock out every
// client sharing its address (Heroku's dynos share egress addresses) with
// the right one.
//
// The counts live in this process's memory, not Redis: a limit per dyno
// still bounds guessing to maxFailures a window per address and dyno, a
// restart forgetting them gives an attacker one window more, and a sign-in
// that needed Redis would fail with it.
const (
	maxFailures = 10
	failWindow  = time.Minute
	// maxThrottled bounds the keys a windowLimit remembers (about 100
	// bytes each), against an attacker rotating addresses or sessions.
	maxThrottled = 10000
)

// windowLimit counts events per key, each key in a window that begins at
// its first event: a key with max events within its window is refused
// until that window ends. Failed sign-ins per client address are counted
// so (newFailures), and a dashboard session's requests (sessionthrottle.go).
type windowLimit struct {
	now    func() time.Time
	max    int
	window time.Duration

	mu    sync.Mutex
	byKey map[string]windowCount
}

// windowCount is one key's events since its window began.
type windowCount struct {
	n     int
	since time.Time
	// tags are the tags of the events addOnce counted in the window.
	tags []uint64
}

func newWindowLimit(now func() time.Time, maxEvents int, window time.Duration) *windowLimit {
	return &windowLimit{now: now, max: maxEvents, window: window, byKey: make(map[string]windowCount)}
}

// newFailures counts failed sign-ins per client address.
func newFailures(now func() time.Time) *windowLimit {
	return newWindowLimit(now, maxFailures, failWindow)
}

// wait says how long key is refused; 0 when it is not.
func (l *windowLimit) wait(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitLocked(key, l.now())
}

// addOnce counts an event of key unless one with the same tag was counted
// in key's window already.
func (l *windowLimit) addOnce(key string, tag uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if c, ok := l.byKey[key]; ok && l.current(c, now) && slices.Contains(c.tags, tag) {
		return
	}
	c := l.addLocked(key, now)
	c.tags = append(c.tags, tag)
	l.byKey[key] = c
}

// take counts an event of key unless key is refused, and says how long it
// is refused; 0 when the event was counted.
func (l *windowLimit) take(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if d := l.waitLocked(key, now); d > 0 {
		return d
	}
	l.addLocked(key, now)
	return 0
}

func (l *windowLimit) waitLocked(key string, now time.Time) time.Duration {
	c, ok := l.byKey[key]
	if !ok || c.n < l.max {
		return 0
	}
	return max(c.since.Add(l.window).Sub(now), 0)
}

// addLocked counts an event of key, and returns key's count.
func (l *windowLimit) addLocked(key string, now time.Time) windowCount {
	c, ok := l.byKey[key]
	if !ok || !l.current(c, now) {
		c = windowCount{since: now}
		if !ok && len(l.byKey) >= maxThrottled {
			l.evict(now)
		}
	}
	c.n++
	l.byKey[key] = c
	return c
}

// current reports whether c's window still runs at now (a clock set back
// before its start ends it).
func (l *windowLimit) current(c windowCount, now time.Time) bool {
	return now.Before(c.since.Add(l.window)) && !now.Before(c.since)
}

// evict forgets one key to make room: one whose window has passed or
// that is not refused yet, else any. Map order is random, so an attacker
// cannot choose which; a refused key is forgotten only when every key
// kept is refused.
func (l *windowLimit) evict(now time.Time) {
	victim := ""
	for k, c := range l.byKey {
		if c.n < l.max || !now.Before(c.since.Add(l.window)) {
			delete(l.byKey, k)
			return
		}
		victim = k
	}
	delete(l.byKey, victim)
}

// size is how many keys are kept.
func (l *windowLimit) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}

// clientAddr is the client r came from: on Heroku, the last entry of
// X-Forwarded-For, which the router appends (entries before it are the
// client's to write); without one, the connection's peer. Like
// X-Forwarded-Proto (overHTTPS), the header is trusted as Heroku's router
// sets it. The address is written one way whatever its form (clientKey).
//
// A request with X-Forwarded-For more than once was written so by its
// client: Heroku's router appends to the first and passes the others on
// as they came, so the last entry of the last is the client's to choose,
// and taking it would let one client guess under fresh addresses, or
// charge its failures to someone else's. Such requests are counted
// together, as one client: no browser, producer or scraper sends them.
func clientAddr(r *http.Request) string {
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		if len(xff) > 1 {
			return severalForwardedFor
		}
		last := xff[0]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if last = strings.TrimSpace(last); last != "" {
			return clientKey(last)
		}
	}
	return clientKey(r.RemoteAddr)
}

// severalForwardedFor is the one client of every request that sends
// X-Forwarded-For more than once.
const severalForwardedFor = "several X-Forwarded-For headers"

// clientKey writes one client's address one way, so that it is counted
// once however it is written: without a port (some proxies add the
// client's), IPv4-mapped IPv6 as IPv4, IPv6 in its canonical spelling and
// cut to its /64, since one machine is commonly given a whole /64 and
// could otherwise guess from each of its addresses in turn. Anything that
// is no address is kept as written.
func clientKey(addr string) string {
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"))
	if err != nil {
		ap, perr := netip.ParseAddrPort(addr)
		if perr != nil {
			return addr
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64) // cannot fail: 64 is within IPv6's 128 bits
	return p.String()
}

// retryAfter is the Retry-After value for d: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(max((d+time.Second-1)/time.Second, 1)))
}

// throttledText says why a client is refused, for the API and operators alike.
const throttledText = "Too many failed sign-ins from this address: try again after the time Retry-After gives, with the right credential."
