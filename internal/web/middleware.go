package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/store"
)

// healthTimeout bounds the health check's Redis write.
const healthTimeout = 2 * time.Second

// healthz answers whether Redis takes writes: GET /healthz. A Redis that
// answers PING but refuses writes (full, read-only, too few replicas)
// stops every rotation and revocation, so the check writes. It is open and
// says nothing else.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	// No log line per probe: the process's Redis watcher logs
	// redis_down once, and the error may name REDIS_URL.
	switch err := s.health.check(r.Context()); {
	case health.URLRefusal(err) != "":
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable",
			"error": "Redis refuses REDIS_URL's user, password or database number: check REDIS_URL"})
	case errors.Is(err, errRedisFull):
		// Open: the address and the hint's words stay in the logs.
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable",
			"error": "Redis refuses new connections, most often for having reached its maxclients (on Heroku Key-Value Store, the plan's " +
				"connection limit); lower REKEY_REDIS_POOL_SIZE or run fewer processes (README, \"Redis connections\")"})
	case errors.Is(err, store.ErrRedisRefusesWrites):
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable",
			"error": "Redis refuses writes (full, read-only or short of replicas): nothing can be rotated or revoked until it takes them"})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable",
			"error": "Redis is unreachable; rekey keeps retrying"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// errRedisFull is the health check's failure on a Redis that refuses new
// connections for having reached its maxclients (fullChecked).
var errRedisFull = errors.New("redis refuses new connections: maxclients reached")

// fullChecked wraps the health check's write so that a failure to reach
// a Redis at its maxclients comes back as errRedisFull: go-redis reads
// Redis's reason as "write: broken pipe", which /healthz took for Redis
// being unreachable. A failure that is Redis's own answer is not probed.
func fullChecked(write func(context.Context) error, full func(context.Context) string) func(context.Context) error {
	if full == nil {
		return write
	}
	return func(ctx context.Context) error {
		err := write(ctx)
		var answered interface{ RedisError() }
		if err == nil || errors.As(err, &answered) || full(ctx) == "" {
			return err
		}
		return fmt.Errorf("%w: %w", errRedisFull, err)
	}
}

// healthEvery is how long one health check's answer serves every
// /healthz: the route is open, and a probe flood must not become a flood
// of writes to Redis.
const healthEvery = time.Second

// healthCheck runs write, Redis's health check, at most once per
// healthEvery, and answers the probes in between with its last result.
type healthCheck struct {
	write func(context.Context) error
	now   func() time.Time

	mu   sync.Mutex
	at   time.Time // when last checked; zero before the first
	last error
}

func (h *healthCheck) check(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); h.at.IsZero() || now.Sub(h.at) >= healthEvery || now.Before(h.at) {
		h.last = h.bounded(ctx)
		h.at = h.now()
	}
	return h.last
}

// bounded runs the health check's write, waiting at most healthTimeout:
// go-redis overruns its context's deadline on a connection that stopped
// answering (its retries, a new connection's handshake, the maxclients
// probe after a failure), and an uptime checker or load balancer that
// gives up first (5 s is common) reads a timeout, not the 503 that says
// why. A write still under way goes on in the background.
func (h *healthCheck) bounded(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healthTimeout)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- h.write(wctx)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(healthTimeout):
		return fmt.Errorf("health check: no answer from Redis within %s: %w", healthTimeout, context.DeadlineExceeded)
	}
}

// metrics serves Params.Metrics to operators: GET /metrics.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.Metrics == nil {
		http.NotFound(w, r)
		return
	}
	s.Metrics.ServeHTTP(w, r)
}

// hsts is the Strict-Transport-Security a browser gets over https: a year,
// this host only (the partner's other hosts are not rekey's to decide).
const hsts = "max-age=31536000"

// SecurityHeaders is securityHeaders, for the pages `rekey dev` serves
// beside the web process (its sign-in stand-in), which carry them too.
func SecurityHeaders(next http.Handler) http.Handler { return securityHeaders(next) }

// securityHeaders sets the headers every answer carries, and HSTS on those
// that came over https (browsers ignore it over plain http, and a local
// http:// rekey must stay reachable). No answer may be framed (clickjacking
// an operator's /monitoring as much as a customer's dashboard) or kept in
// a cache (a shared machine's browser would keep asynqmon's task lists).
// rekey's pages set their own Content-Security-Policy; asynqmon's pages
// load their own scripts, so theirs says only that they are not framed
// (monitoringCSP).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if overHTTPS(r) {
			h.Set("Strict-Transport-Security", hsts)
		}
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		if r.URL.Path == monitoringRoot || strings.HasPrefix(r.URL.Path, monitoringRoot+"/") {
			h.Set("Content-Security-Policy", monitoringCSP)
		}
		next.ServeHTTP(w, r)
	})
}

// monitoringCSP is asynqmon's Content-Security-Policy: no framing, and
// nothing about scripts or styles, which its bundle loads and inlines as it
// needs.
const monitoringCSP = "frame-ancestors 'none'"

// statusWriter remembers the status a handler wrote, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxQuotedLen bounds what a request line quotes of the request: its
// method, its path and its request id. Heroku's router sends a UUID for the
// id, and rekey's paths are short, but anyone may send a method, a path or
// an X-Request-Id of up to the header limit, and an unauthenticated request
// is logged too. A path's control bytes, sent percent-encoded (3 bytes),
// are 6 in the line ("\u0001"): a path within Heroku's 8 KB request line
// would make a line longer than logplex keeps whole (10 KB), cut into lines
// that are not JSON.
const maxQuotedLen = 200

// logRequests writes one line per request: method, path, status and
// duration. Query strings are never logged, and the health check is not
// logged at all.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if r.URL.Path == "/healthz" && sw.status == http.StatusOK {
			return
		}
		s.Logger.Info().Str("method", clip(r.Method, maxQuotedLen)).Str("path", clip(r.URL.Path, maxQuotedLen)).Int("status", sw.status).
			Dur("duration_ms", s.Now().Sub(start)).Str("request_id", clip(r.Header.Get("X-Request-Id"), maxQuotedLen)).Msg("request")
	})
}

// clip cuts s to at most n bytes, on a rune boundary, marking a cut with
// "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
