// Package herokufake is a faithful fake of Heroku's add-on partner APIs,
// served over real HTTP so rekey's own Heroku client is tested against it.
//
// One Fake answers the V3 Platform API for Partners (add-on config, add-on
// info, rate limits), the OAuth token endpoint that normally lives on
// id.heroku.com, and the legacy V1 App Info API. Its base URL can therefore
// stand for both HEROKU_API_URL and HEROKU_ID_URL.
//
// Besides answering like Heroku, the fake models what Heroku does after a
// config change: a release on the add-on's app and on every attached app, and
// dynos that keep running the previous config until their restart delay has
// passed. Holders reports who still uses a value, which lets tests prove a
// credential is never revoked while something still runs with it.
//
// Tests drive it through Go methods (AddAddon, GrantCode, Script, Stats,
// ...); cmd/fakeheroku exposes the same controls as JSON under /_fake/.
// Time comes from an injectable clock, so tests move time instead of sleeping.
package herokufake

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Fake is an in-memory Heroku. It implements http.Handler and is safe for
// concurrent use; every method may be called while requests are served.
type Fake struct {
	set settings
	now func() time.Time
	mux *http.ServeMux

	mu        sync.Mutex
	addons    map[string]*addon // by ID
	names     map[string]string // global add-on name -> ID
	herokuIDs map[string]string // V1 heroku_id -> ID
	apps      map[string]*app   // by app name
	codes     map[string]*grant
	access    map[string]*accessToken
	refresh   map[string]*authorization
	buckets   map[string]*bucket // "" is the account's bucket
	scripts   map[Endpoint][]Fault
	always    map[Endpoint]Fault
	rng       *rand.Rand
	calls     []Call

	logs logInputs // Logplex input (logplex.go)
}

// New returns a Fake with no add-ons. It panics with a sentence when an
// option is given an invalid value, since that is a bug in the calling test.
func New(opts ...Option) *Fake {
	set := defaults()
	for _, opt := range opts {
		if err := opt(&set); err != nil {
			panic("herokufake: " + err.Error())
		}
	}
	f := &Fake{
		set:       set,
		now:       set.now,
		mux:       http.NewServeMux(),
		addons:    map[string]*addon{},
		names:     map[string]string{},
		herokuIDs: map[string]string{},
		apps:      map[string]*app{},
		codes:     map[string]*grant{},
		access:    map[string]*accessToken{},
		refresh:   map[string]*authorization{},
		buckets:   map[string]*bucket{},
		scripts:   map[Endpoint][]Fault{},
		always:    map[Endpoint]Fault{},
		rng:       rand.New(rand.NewPCG(set.seed, set.seed)),
	}
	f.routes()
	return f
}

// ServeHTTP answers one request to the API host, the OAuth host or /_fake/.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mux.ServeHTTP(w, r)
}

func (f *Fake) routes() {
	f.mux.Handle("GET /addons/{addon}/config", f.api(GetConfig, f.getConfig))
	f.mux.Handle("PATCH /addons/{addon}/config", f.api(PatchConfig, f.patchConfig))
	f.mux.Handle("GET /addons/{addon}", f.api(GetAddon, f.getAddon))
	f.mux.Handle("GET /account/rate-limits", f.api(RateLimits, f.rateLimits))
	f.mux.Handle("POST /oauth/token", f.api(OAuthToken, f.token))
	f.mux.Handle("PUT /vendor/apps/{heroku_id}", f.api(V1Put, f.v1Put))
	f.mux.Handle("GET /vendor/apps/{heroku_id}", f.api(V1Get, f.v1Get))
	f.mux.Handle("/", f.api(Unknown, notFound))
	f.adminRoutes()
	f.logplexRoutes()
}

// notFound answers routes Heroku does not have, the way Heroku does.
func notFound(x *exchange) {
	x.fail(http.StatusNotFound, "not_found", "The requested API endpoint was not found.")
}
