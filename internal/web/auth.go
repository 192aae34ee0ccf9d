package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Credentials are read only from headers: a token in a query string never
// authenticates, because URLs end up in logs, browser history and Referer
// headers.

// secretEqual compares a presented value with a secret in constant time.
// Both sides are hashed first, so neither the content nor the length of the
// secret leaks through timing.
func secretEqual(presented string, want secret.String) bool {
	if want.IsZero() {
		return false
	}
	a := sha256.Sum256([]byte(presented))
	b := sha256.Sum256([]byte(want.Reveal()))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// hexEqual compares two hex digests in constant time, ignoring case.
func hexEqual(presented, want string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(presented)), []byte(want)) == 1
}

// deriveKey derives a key for one purpose from a secret, so the secret
// itself never signs anything and each purpose has its own key.
func deriveKey(from secret.String, purpose string) []byte {
	m := hmac.New(sha256.New, []byte(from.Reveal()))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// bearerOK reports whether r carries Authorization: Bearer with the API
// token, or with the token it replaced while REKEY_API_TOKEN_PREVIOUS
// holds it.
func (s *server) bearerOK(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.TrimSpace(token)
	if secretEqual(token, s.APIToken) {
		return true
	}
	if !secretEqual(token, s.APITokenPrevious) {
		return false
	}
	s.previous.used(s.Logger, clientAddr(r), s.Now())
	return true
}

// previousToken counts the requests that came with REKEY_API_TOKEN_PREVIOUS
// and logs them, at most once a minute a process, so that the operator
// rotating the token sees which producers still send the old one and when
// none does: then REKEY_API_TOKEN_PREVIOUS can go.
type previousToken struct {
	mu     sync.Mutex
	n      int
	logged time.Time
}

// used counts one request with the previous token, from client, and logs
// the count and the client when the last line is a minute old.
func (p *previousToken) used(log zerolog.Logger, client string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if now.Sub(p.logged) < time.Minute && !now.Before(p.logged) {
		return
	}
	log.Warn().Int("requests", p.n).Str("last_client", client).Str("unset_when_unused", "REKEY_API_TOKEN_PREVIOUS").
		Msg("api_token_previous_used")
	p.n, p.logged = 0, now
}

// operatorOK reports whether r carries HTTP Basic with the dashboard
// password; the user name is not checked.
func (s *server) operatorOK(r *http.Request) bool {
	_, pass, ok := r.BasicAuth()
	return ok && secretEqual(pass, s.DashboardPassword)
}

// requireAPI lets through requests with the API token.
func (s *server) requireAPI(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.throttled(w, r, true) {
			return
		}
		if !s.bearerOK(r) {
			s.countFailure(r)
			w.Header().Set("WWW-Authenticate", `Bearer realm="rekey"`)
			writeError(w, http.StatusUnauthorized, "send the API token as Authorization: Bearer REKEY_API_TOKEN")
			return
		}
		next(w, r)
	})
}

// requireOperator lets through requests with the operators' Basic password.
func (s *server) requireOperator(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.throttled(w, r, false) {
			return
		}
		if !s.operatorOK(r) {
			s.countFailure(r)
			w.Header().Set("WWW-Authenticate", `Basic realm="rekey operators", charset="UTF-8"`)
			http.Error(w, "Operator sign-in required.", http.StatusUnauthorized)
			return
		}
		next(w, r)
	})
}

// requireMetrics lets through the API token or the operators' password.
func (s *server) requireMetrics(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.throttled(w, r, false) {
			return
		}
		if !s.bearerOK(r) && !s.operatorOK(r) {
			s.countFailure(r)
			w.Header().Set("WWW-Authenticate", `Basic realm="rekey operators", charset="UTF-8"`)
			http.Error(w, "Operator sign-in required.", http.StatusUnauthorized)
			return
		}
		next(w, r)
	})
}

// throttled answers 429 with Retry-After to a client refused for its
// failed sign-ins (throttle.go), in JSON for the API, and reports whether
// it did.
func (s *server) throttled(w http.ResponseWriter, r *http.Request, api bool) bool {
	wait := s.failures.wait(clientAddr(r))
	if wait <= 0 {
		return false
	}
	w.Header().Set("Retry-After", retryAfter(wait))
	if api {
		writeError(w, http.StatusTooManyRequests, throttledText)
	} else {
		http.Error(w, throttledText, http.StatusTooManyRequests)
	}
	return true
}

// countFailure counts a refused request that presented a credential, once
// per credential a window (throttle.go). The credential is known by a hash
// with this process's own random seed, kept in memory only.
func (s *server) countFailure(r *http.Request) {
	if presented := r.Header.Get("Authorization"); presented != "" {
		s.failures.addOnce(clientAddr(r), maphash.String(credentialSeed, presented))
	}
}

// credentialSeed seeds the hashes countFailure tells credentials apart by.
var credentialSeed = maphash.MakeSeed()
