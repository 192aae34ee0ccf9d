package web

import (
	"net/http"
	"time"
)

// A dashboard request costs Redis reads before it is answered: about ten
// for the status poll (the session's end marks, the instance, its rotation,
// old credentials, holds and timeline), more for the page. The page's
// script polls every 2 s while something is under way, one request at a
// time, so a tab asks at most 30 times a minute; a script asks as fast as
// its machine allows, and would load the Redis every add-on's rotations
// run on. Past sessionRequests a minute (four tabs' polling, with reloads)
// a session's requests are answered 429 with Retry-After, before any Redis
// read; past instanceRequests a minute, so are all sessions of its add-on
// together, since each opening from Heroku signs in anew.
//
// Like the sign-in throttle (throttle.go) the counts live in this
// process's memory: each web dyno allows its own share, a restart forgets
// them, and the limit works while Redis is slow. Each windowLimit keeps at
// most maxThrottled keys (about a megabyte).
const (
	sessionRequests  = 120
	instanceRequests = 300
	requestWindow    = time.Minute
)

// sessionLimits are the dashboard's request limits, per session and per add-on.
type sessionLimits struct {
	bySession, byInstance *windowLimit
}

func newSessionLimits(now func() time.Time) sessionLimits {
	return sessionLimits{bySession: newWindowLimit(now, sessionRequests, requestWindow),
		byInstance: newWindowLimit(now, instanceRequests, requestWindow)}
}

// take counts a request of sess, and says how long it is refused; 0 when it
// is served. A session is known by its sign-in's nonce, which its signed
// cookie carries.
func (l sessionLimits) take(sess session) time.Duration {
	if d := l.bySession.take(sess.Nonce); d > 0 {
		return d
	}
	return l.byInstance.take(sess.InstanceID)
}

// tooManyRequests answers a dashboard request refused for wait: the status
// poll in JSON, which the page's script reads, anything else with a page.
func (s *server) tooManyRequests(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	const msg = "This add-on's dashboard was asked for more often than a browser does, so this request was not answered. Try again after a minute."
	w.Header().Set("Retry-After", retryAfter(wait))
	if r.URL.Path == statusPath {
		writeError(w, http.StatusTooManyRequests, msg)
		return
	}
	s.page(w, r, http.StatusTooManyRequests, "Too many requests", msg)
}
