package web

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A client that presents a wrong API token or operators' password
// maxFailures times within failWindow of its first failure is answered 429
// with Retry-After, whatever it presents, until that window ends: the
// operators' password may be as short as 8 characters, and without a
// limit it could be guessed as fast as the dyno answers. Refusing the
// right credential too keeps a 429 from telling which guesses were wrong.
// The count is per client address, so an attacker cannot lock out
// operators elsewhere. Requests without credentials are not counted: a
// browser asks once without them before it shows the password prompt.
//
// The counts live in this process's memory, not Redis: a limit per dyno
// still bounds guessing to maxFailures a window per address and dyno, a
// restart forgetting them gives an attacker one window more, and a sign-in
// that needed Redis would fail with it.
const (
	maxFailures = 10
	failWindow  = time.Minute
	// maxThrottled bounds the clients remembered (about 100 bytes each),
	// against an attacker rotating addresses.
	maxThrottled = 10000
)

// failures counts failed sign-ins per client address.
type failures struct {
	now func() time.Time

	mu       sync.Mutex
	byClient map[string]failCount
}

// failCount is one client's failures since its window began.
type failCount struct {
	n     int
	since time.Time
}

func newFailures(now func() time.Time) *failures {
	return &failures{now: now, byClient: make(map[string]failCount)}
}

// wait says how long client is refused; 0 when it is not.
func (f *failures) wait(client string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byClient[client]
	if !ok || c.n < maxFailures {
		return 0
	}
	return max(c.since.Add(failWindow).Sub(f.now()), 0)
}

// fail counts a failed sign-in from client.
func (f *failures) fail(client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	c, ok := f.byClient[client]
	if !ok || !now.Before(c.since.Add(failWindow)) || now.Before(c.since) {
		c = failCount{since: now}
		if !ok && len(f.byClient) >= maxThrottled {
			f.evict(now)
		}
	}
	c.n++
	f.byClient[client] = c
}

// evict forgets one client to make room: one whose window has passed or
// that is not refused yet, else any. Map order is random, so an attacker
// cannot choose which; a refused client is forgotten only when every
// client kept is refused.
func (f *failures) evict(now time.Time) {
	victim := ""
	for k, c := range f.byClient {
		if c.n < maxFailures || !now.Before(c.since.Add(failWindow)) {
			delete(f.byClient, k)
			return
		}
		victim = k
	}
	delete(f.byClient, victim)
}

// size is how many clients are kept.
func (f *failures) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byClient)
}

// clientAddr is the address r came from: on Heroku, the last entry of
// X-Forwarded-For, which the router appends (entries before it are the
// client's to write); without one, the connection's peer. Like
// X-Forwarded-Proto (overHTTPS), the header is trusted as Heroku's router
// sets it.
func clientAddr(r *http.Request) string {
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		last := xff[len(xff)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if last = strings.TrimSpace(last); last != "" {
			return last
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfter is the Retry-After value for d: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(max((d+time.Second-1)/time.Second, 1)))
}

// throttledText says why a client is refused, for the API and operators alike.
const throttledText = "Too many failed sign-ins from this address: try again after the time Retry-After gives, with the right credential."
