package web

import (
	"net/http"
	"strings"
)

// requireHTTPS keeps plain http off a dyno behind Heroku's router, as
// Rails's force_ssl does: a request the router says came over http
// (X-Forwarded-Proto: http) is redirected to its https URL when it is a
// GET or HEAD, and refused otherwise, unhandled, so an API client sending
// its token in the clear learns to use https rather than being served.
// Answers over https carry HSTS (securityHeaders). A request without
// X-Forwarded-Proto reached the dyno directly (rekey dev on this machine,
// a scrape on a private network) and is served as it came. So is every
// request when REKEY_INSECURE_COOKIES says plain http is meant (a local
// proxy without TLS in front of rekey web, which says http).
func (s *server) requireHTTPS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.InsecureCookies || r.TLS != nil || !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "http") {
			next.ServeHTTP(w, r)
			return
		}
		to := "https://" + r.Host + r.URL.RequestURI()
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Redirect(w, r, to, http.StatusMovedPermanently)
			return
		}
		msg := "rekey answers only over https: send this request to " + "https://" + r.Host + r.URL.Path
		if isAPIPath(r.URL.Path) {
			writeError(w, http.StatusForbidden, msg)
			return
		}
		http.Error(w, msg, http.StatusForbidden)
	})
}

// isAPIPath reports whether path is the HTTP API's, whose answers are JSON.
func isAPIPath(path string) bool { return strings.HasPrefix(path, "/api/") }
