// Package web is rekey's web process: the HTTP API other apps use to
// register instances and request rotations, the customer dashboard reached
// through Heroku single sign-on, asynqmon for operators at /monitoring, the
// metrics endpoint and the health check.
//
// Every route is declared once, in the table built by routes, together with
// who may call it; the table is what the mux serves and what the security
// tests walk, so a route cannot be added without an access rule. Secret
// values never reach a response: the API and the dashboard show credential
// ids and times, never a credential, token or password.
package web

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// Params are the web process's dependencies.
type Params struct {
	// Store holds every instance, credential, rotation, batch and event. Required.
	Store *store.Store
	// Producer requests rotations for the API and the dashboard. Required.
	Producer *fleet.Producer
	// Registry registers instances (PUT /api/v1/instances/...). Required.
	Registry *registry.Registry
	// Inspector runs a revoke task at once ("Revoke the old credential
	// now"), an *asynq.Inspector. Required.
	Inspector reconcile.Inspector
	// Enqueuer schedules a revoke task when none exists (an *asynq.Client). Required.
	Enqueuer fleet.Enqueuer
	// APIToken is REKEY_API_TOKEN, the bearer token of the API and /metrics. Required.
	APIToken secret.String
	// APITokenPrevious is REKEY_API_TOKEN_PREVIOUS: the token APIToken
	// replaced, taken as well while the producers move to the new one
	// (each use logged, previousToken); zero takes none.
	APITokenPrevious secret.String
	// DashboardPassword is REKEY_DASHBOARD_PASSWORD, the operators' HTTP
	// Basic password for /monitoring and /metrics. Required.
	DashboardPassword secret.String
	// SSOSalt is HEROKU_SSO_SALT; it checks SSO tokens and keys the
	// dashboard's session cookies. Required.
	SSOSalt secret.String
	// Metrics serves /metrics to operators; nil answers 404.
	Metrics http.Handler
	// Monitoring replaces the asynqmon handler at /monitoring (tests); nil
	// builds a read-only asynqmon over the store's Redis.
	Monitoring http.Handler
	// Grace and PrivateSpaceGrace are REKEY_GRACE and
	// REKEY_PRIVATE_SPACE_GRACE, which the dashboard quotes; zero says "a
	// grace period".
	Grace, PrivateSpaceGrace time.Duration
	// MaxGrace is the grace ceiling (config.GraceCeiling): a deprovisioned
	// instance's unconfirmed credentials are revoked no later than that,
	// and the dashboard quotes no longer grace.
	MaxGrace time.Duration
	// MinGrace is the grace floor (config.GraceFloor): a deprovisioned
	// instance's unconfirmed credentials are revoked no sooner than that.
	MinGrace time.Duration
	// Window is REKEY_MAINTENANCE_WINDOW's window (nil: none), in which an
	// instance without one of its own rotates: the next rotation the API
	// and the dashboard tell is moved into it, as the scheduler moves it.
	// The window the running clocks announce goes before it (fleetWindow).
	Window *store.Window
	// CustomerLimits limit the rotations the dashboard's button starts for
	// one instance (REKEY_CUSTOMER_ROTATIONS_PER_DAY and
	// REKEY_CUSTOMER_ONE_PER_GRACE); the store's claim enforces them. The
	// zero value limits nothing.
	CustomerLimits store.CustomerLimits
	// Logger receives one line per request and errors worth an operator's look.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RedisFull says, after the health check could not reach Redis,
	// whether Redis refuses new connections for having reached its
	// maxclients (health.MaxClientsHint on REDIS_URL's address): /healthz
	// then says so rather than that Redis is unreachable. nil never asks.
	RedisFull func(context.Context) string
	// IdempotentPending is how long a rotation request sent with an
	// Idempotency-Key marks the key as being handled past the last sign
	// of life of the process handling it; 0 means 2 minutes (tests
	// shorten it).
	IdempotentPending time.Duration
	// InsecureCookies is REKEY_INSECURE_COOKIES: it lets the dashboard's
	// cookies go without the Secure attribute on requests that came over
	// plain http, for a browser on a local http:// address. The zero
	// value marks every cookie Secure.
	InsecureCookies bool
}

// server holds the checked Params and the derived keys. It is safe for
// concurrent use.
type server struct {
	Params
	mux        *http.ServeMux
	sessionKey []byte
	monitoring http.Handler
	health     *healthCheck
	window     windowCache
	failures   *windowLimit
	previous   previousToken
	polls      sessionLimits
}

// windowCache is the fleet's maintenance window as last read.
type windowCache struct {
	mu sync.Mutex
	w  *store.Window
	at time.Time // when read; zero: never read
}

// windowReadEvery is how often the web process reads again the window the
// clocks announce: they renew their announcements every minute.
const windowReadEvery = 30 * time.Second

// fleetWindow is the window the next rotations the API and the dashboard
// tell keep to: the one the running clocks announce with their settings
// (store.AnnouncedWindow), as they schedule in it, read at most every
// windowReadEvery; else this process's own REKEY_MAINTENANCE_WINDOW.
// A read that fails (Redis slow, the client gone) keeps the window last
// read, and is made again by the next request.
func (s *server) fleetWindow(ctx context.Context) *store.Window {
	c := &s.window
	c.mu.Lock()
	w, at := c.w, c.at
	c.mu.Unlock()
	if !at.IsZero() && time.Since(at) < windowReadEvery {
		return w
	}
	live, err := s.Store.SharedSettings(ctx)
	if err != nil {
		if at.IsZero() {
			return s.Window
		}
		return w
	}
	w, ok := store.AnnouncedWindow(live)
	if !ok {
		w = s.Window
	}
	c.mu.Lock()
	c.w, c.at = w, time.Now()
	c.mu.Unlock()
	return w
}

// New checks p and returns the web process's handler: every route of the
// route table behind its access rule, with security headers and one log
// line per request. The handler is safe for concurrent use; it holds no
// state of its own besides keys derived from p's secrets and the last
// health check's answer.
func New(p Params) (http.Handler, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.IdempotentPending <= 0 {
		p.IdempotentPending = idempotentPending
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	s := &server{Params: p, mux: http.NewServeMux(), sessionKey: deriveKey(p.SSOSalt, "rekey dashboard session v1"),
		health: &healthCheck{write: fullChecked(p.Store.CheckWritable, p.RedisFull), now: time.Now}, failures: newFailures(p.Now),
		polls: newSessionLimits(p.Now)}
	s.monitoring = p.Monitoring
	if s.monitoring == nil {
		s.monitoring = newMonitoring(p.Store.Redis())
	}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern, s.guard(rt))
	}
	return s.logRequests(securityHeaders(s.requireHTTPS(s.cleanAPIPaths(s.mux)))), nil
}

func (p Params) check() error {
	switch {
	case p.Store == nil || p.Producer == nil || p.Registry == nil:
		return errors.New("web: Store, Producer and Registry are required")
	case p.Inspector == nil || p.Enqueuer == nil:
		return errors.New("web: Inspector and Enqueuer are required")
	case p.APIToken.IsZero():
		return errors.New("web: APIToken (REKEY_API_TOKEN) is required")
	case p.DashboardPassword.IsZero():
		return errors.New("web: DashboardPassword (REKEY_DASHBOARD_PASSWORD) is required")
	case p.SSOSalt.IsZero():
		return errors.New("web: SSOSalt (HEROKU_SSO_SALT) is required")
	}
	return nil
}

// access says who may call a route.
type access int

// The access rules.
const (
	// accessOpen: anyone (the health check).
	accessOpen access = iota
	// accessSSO: anyone, but the handler checks Heroku's SSO token.
	accessSSO
	// accessAPI: Authorization: Bearer REKEY_API_TOKEN.
	accessAPI
	// accessOperator: HTTP Basic with REKEY_DASHBOARD_PASSWORD, any user name.
	accessOperator
	// accessMetrics: the API token or the operators' Basic password.
	accessMetrics
	// accessSession: a dashboard session from SSO.
	accessSession
	// accessSessionCSRF: a dashboard session and its CSRF token (forms).
	accessSessionCSRF
	// accessSignOut: as accessSessionCSRF while the session lives; a
	// request without a live session (signed out already: a double-click,
	// another tab) is sent to the signed-out page, and nothing changes.
	accessSignOut
)

var accessNames = [...]string{"open", "sso", "api", "operator", "metrics", "session", "session+csrf", "sign-out"}

// String names the rule, for tests and logs.
func (a access) String() string { return accessNames[a] }

// route is one entry of the route table.
type route struct {
	pattern string
	access  access
	handler http.HandlerFunc
}

// healthPath is the open health check.
const healthPath = "/healthz"

// statusPath is the dashboard's status poll, answered in JSON.
const statusPath = "/dashboard/status"

// routes is the one table of everything the web process serves.
func (s *server) routes() []route {
	return []route{
		{"GET " + healthPath, accessOpen, s.healthz},
		{"GET /metrics", accessMetrics, s.metrics},

		{"GET /api/v1/instances", accessAPI, s.listInstances},
		{"PUT /api/v1/instances/{addon_id}", accessAPI, s.putInstance},
		{"GET /api/v1/instances/{addon_id}", accessAPI, s.getInstance},
		{"DELETE /api/v1/instances/{addon_id}", accessAPI, s.deleteInstance},
		{"POST /api/v1/rotations", accessAPI, s.postRotations},
		{"GET /api/v1/batches", accessAPI, s.listBatches},
		{"GET /api/v1/batches/{batch_id}", accessAPI, s.getBatch},
		{"GET /api/v1/batches/{batch_id}/failed", accessAPI, s.getBatchFailed},
		{"/api/", accessAPI, s.apiFallback},

		{"POST /sso/login", accessSSO, s.ssoLogin},
		{"GET /dashboard", accessSession, s.dashboard},
		{"GET " + statusPath, accessSession, s.dashboardStatus},
		{"POST /dashboard/rotate", accessSessionCSRF, s.dashboardRotate},
		{"POST /dashboard/revoke-now", accessSessionCSRF, s.dashboardRevokeNow},
		{"POST /dashboard/logout", accessSignOut, s.logout},
		{"GET " + signedOutPath, accessOpen, s.signedOut},

		{"/monitoring", accessOperator, s.serveMonitoring},
		{"/monitoring/", accessOperator, s.serveMonitoring},
	}
}

// guard wraps a route's handler in its access rule.
func (s *server) guard(rt route) http.Handler {
	switch rt.access {
	case accessAPI:
		return s.requireAPI(rt.handler)
	case accessOperator:
		return s.requireOperator(rt.handler)
	case accessMetrics:
		return s.requireMetrics(rt.handler)
	case accessSession, accessSessionCSRF, accessSignOut:
		return s.requireSession(rt.handler, rt.access)
	}
	return rt.handler
}

// requestContext bounds the work of one request, and keeps it going when
// the client goes away, so a request that passed its checks is applied in
// full rather than cut short half-way.
func requestContext(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), d)
}
