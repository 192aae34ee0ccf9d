package web

import (
	"net/http"
	"path"
	"strings"
)

// requireHTTPS keeps plain http off a dyno behind Heroku's router, as
// Rails's force_ssl does: a request the router says came over http
// (X-Forwarded-Proto: http) is redirected to its https URL when it is a
// GET or HEAD without credentials (a browser's first visit), and refused
// otherwise, unhandled. A request that sent a credential in the clear, or
// any request to the API, is refused rather than redirected: clients follow
// redirects, so one configured with an http:// URL would send its token in
// the clear with every request and never notice; refused, it learns to use
// https. /healthz, which says only whether Redis answers, is served either
// way, for uptime checks that follow no redirect. Answers over https carry
// HSTS (securityHeaders). A request without X-Forwarded-Proto reached the
// dyno directly (rekey dev on this machine, a scrape on a private network)
// and is served as it came. So is every request when
// REKEY_INSECURE_COOKIES says plain http is meant (a local proxy without
// TLS in front of rekey web, which says http).
func (s *server) requireHTTPS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.InsecureCookies || r.TLS != nil || !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "http") ||
			r.URL.Path == healthPath {
			next.ServeHTTP(w, r)
			return
		}
		api := isAPIPath(r.URL.Path)
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !api && r.Header.Get("Authorization") == "" {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		msg := "rekey answers only over https: send this request to https://" + r.Host + r.URL.Path
		if r.Header.Get("Authorization") != "" {
			msg += ", and replace the credential it sent in the clear"
		}
		if api {
			writeError(w, http.StatusForbidden, msg)
			return
		}
		http.Error(w, msg, http.StatusForbidden)
	})
}

// isAPIPath reports whether p is the HTTP API's, whose answers are JSON:
// it starts with /api/, or cleans to /api or /api/... (/api itself, and
// //api/v1/instances/x, what a base URL ending in a slash joined with an
// API path gives).
func isAPIPath(p string) bool {
	clean := path.Clean("/" + p)
	return strings.HasPrefix(p, "/api/") || clean == "/api" || strings.HasPrefix(clean, "/api/")
}
