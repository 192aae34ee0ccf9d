// Package config is the only code in rekey that reads the environment.
//
// Load parses every variable once at start-up and fails with one sentence per
// bad variable, each naming it, so an operator fixes the environment in one
// go; each process then asks for what it needs (RequireX), which lists every
// missing variable the same way.
// A Config is read-only after Load and safe for concurrent use.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Issuer backends.
const (
	IssuerHTTP = "http"
)

// Rate limit scopes (Heroku does not document which one applies).
const (
	ScopeAccount  = "account"
	ScopeInstance = "instance"
)

// Config is rekey's configuration. Each field names its variable and default.
type Config struct {
	// RedisURL is REDIS_URL: redis:// or rediss://. No default.
	RedisURL string
	// RedisVerifyTLS is REKEY_REDIS_VERIFY_TLS. Default false, because Heroku
	// Key-Value Store serves a self-signed certificate.
	RedisVerifyTLS bool
	// RedisPoolSize is REKEY_REDIS_POOL_SIZE, the most connections one
	// process keeps open for Redis commands. Default DefaultRedisPoolSize,
	// whatever the number of CPUs; a pool_size in REDIS_URL's query wins.
	// A worker holds one more per lane for asynq's cancellations
	// (RedisOptions).
	RedisPoolSize int
	// RedisWaitReplicas is REKEY_REDIS_WAIT_REPLICAS, how many of Redis's
	// replicas must acknowledge rekey's writes before a worker mints, pushes
	// or revokes (store.WithDurability). Default 0: no wait.
	RedisWaitReplicas int
	// Dyno is DYNO, the dyno's name Heroku gives the process ("worker.1");
	// empty elsewhere.
	Dyno string
	// Port is PORT, the web process's listen port. Default 5000.
	Port int
	// HerokuAPIURL is HEROKU_API_URL. Default https://api.heroku.com.
	HerokuAPIURL string
	// HerokuIDURL is HEROKU_ID_URL. Default https://id.heroku.com.
	HerokuIDURL string
	// OAuthClientSecret is HEROKU_OAUTH_CLIENT_SECRET (V3).
	OAuthClientSecret secret.String
	// AddonID and AddonPassword are HEROKU_ADDON_ID and
	// HEROKU_ADDON_PASSWORD, the add-on manifest's id and api.password (V1,
	// provisioning and SSO V1).
	AddonID       string
	AddonPassword secret.String
	// SSOSalt is HEROKU_SSO_SALT.
	SSOSalt secret.String
	// APIToken is REKEY_API_TOKEN, the bearer token of the HTTP API.
	APIToken secret.String
	// APITokenPrevious is REKEY_API_TOKEN_PREVIOUS, the token REKEY_API_TOKEN
	// replaced, still taken while the producers move to the new one.
	APITokenPrevious secret.String
	// DashboardPassword is REKEY_DASHBOARD_PASSWORD, the operators' password
	// for /monitoring.
	DashboardPassword secret.String
	// EncryptionKeys is REKEY_ENCRYPTION_KEYS: comma-separated base64 32-byte
	// keys; the first seals, all open.
	EncryptionKeys [][]byte
	// Grace is REKEY_GRACE, how long a previous credential stays valid.
	// Default 2h.
	Grace time.Duration
	// PrivateSpaceGrace is REKEY_PRIVATE_SPACE_GRACE, the grace for
	// instances in Private Spaces, whose dynos restart more slowly. Default 4h.
	PrivateSpaceGrace time.Duration
	// MinGrace is REKEY_MIN_GRACE, the shortest grace a rotation request or
	// an instance's registration may ask for; GraceFloor lowers it to
	// REKEY_GRACE when that is shorter. Default 10m.
	MinGrace time.Duration
	// MaxGrace is REKEY_MAX_GRACE, the longest grace a rotation request or
	// an instance's registration may ask for; GraceCeiling raises it to
	// REKEY_GRACE and REKEY_PRIVATE_SPACE_GRACE when either is longer.
	MaxGrace time.Duration
	// CustomerRotationsPerDay is REKEY_CUSTOMER_ROTATIONS_PER_DAY, how many
	// rotations the dashboard's button may start for one instance in any
	// 24 hours. Default 3; 0 means no daily cap.
	CustomerRotationsPerDay int
	// CustomerOnePerGrace is REKEY_CUSTOMER_ONE_PER_GRACE: the dashboard's
	// button is refused while a previous credential of the instance still
	// waits for revocation. Default true.
	CustomerOnePerGrace bool
	// InsecureCookies is REKEY_INSECURE_COOKIES: the dashboard's cookies
	// lose the Secure attribute on requests that came over plain http, for
	// a browser on a local http:// address (README "Customer dashboard").
	// Default false: every cookie is Secure.
	InsecureCookies bool
	// MaxPrevious is REKEY_MAX_PREVIOUS, how many superseded credentials one
	// instance may have waiting for revocation; a rotation request beyond it
	// is refused, whoever sends it. Default 3; 0 means no cap.
	MaxPrevious int
	// RotationPeriod is REKEY_ROTATION_PERIOD. Default 2160h (90 days); 0
	// turns scheduled rotation off.
	RotationPeriod time.Duration
	// MaintenanceWindow is REKEY_MAINTENANCE_WINDOW, the hours of the day
	// (UTC) in which scheduled rotations run, as "HH-HH" ("02-05"; "22-04"
	// spans midnight). An instance's own window overrides it. Default ""
	// (any time).
	MaintenanceWindow string
	// QuarantineAfter is REKEY_QUARANTINE_AFTER: an instance whose scheduled
	// rotation fails permanently this many times in a row is set aside until
	// an operator or a successful manual rotation clears it. Default 3; 0
	// means never.
	QuarantineAfter int
	// BreakerThreshold is REKEY_BREAKER_THRESHOLD: the circuit breaker
	// pauses bulk and scheduled work when at least this many distinct
	// instances answered 401 or 403 within BreakerWindow, and they are at
	// least BreakerFraction of the instances Heroku answered in it.
	// Default 10; 0 turns the breaker off; 1 is refused, since one
	// customer's add-on must never pause the fleet.
	BreakerThreshold int
	// BreakerFraction is REKEY_BREAKER_FRACTION, from above 0 to 1.
	// Default 0.5.
	BreakerFraction float64
	// BreakerWindow is REKEY_BREAKER_WINDOW, how far back the breaker
	// counts answers. Default 5m.
	BreakerWindow time.Duration
	// HerokuRate is REKEY_HEROKU_RATE, Heroku calls per hour rekey may spend.
	// Default 4000, leaving 500 of Heroku's 4500 to the partner's other traffic.
	HerokuRate int
	// RateScope is REKEY_RATE_SCOPE: "account" (default) or "instance".
	RateScope string
	// Issuer is REKEY_ISSUER: "http" or "postgres". Default "http".
	Issuer string
	// IssuerURL is REKEY_ISSUER_URL, the partner's issuer webhook base URL.
	IssuerURL string
	// IssuerSecret is REKEY_ISSUER_SECRET, the webhook signing secret.
	IssuerSecret secret.String
	// IssuerSecretPrevious is REKEY_ISSUER_SECRET_PREVIOUS, the secret
	// REKEY_ISSUER_SECRET replaced: while it is set every webhook request is
	// signed with both, so the issuer takes rekey's requests whether it has
	// switched to the new secret yet or not (issuer.WithPreviousSecret).
	IssuerSecretPrevious secret.String
	// IssuerAllowHTTP is REKEY_ISSUER_ALLOW_HTTP: accept a plain http://
	// REKEY_ISSUER_URL to a host that is not loopback. Default false: minted
	// credentials travel in the issuer's answers, so only https://, or
	// http:// to localhost, 127.0.0.0/8 or ::1, is accepted.
	IssuerAllowHTTP bool
	// Issuer404PageRevoked is REKEY_ISSUER_404_PAGE_REVOKED: take a 404
	// that comes as a page (HTML, or a framework's default not-found
	// answer) to DELETE /credentials/{id} for a revocation. Default false:
	// such a page is a router's or a framework's, and the revocation is
	// retried (issuer.HTTP.Revoke).
	Issuer404PageRevoked bool
	// IssuerVerify is REKEY_ISSUER_VERIFY, what the webhook's 404 to
	// POST /credentials/{id}/verify means: "auto" (default) reads it as
	// "verify unsupported" only while the issuer has not answered a verify
	// itself (2xx, 409, 410 or 422) within a year, and once it has, as
	// "the issuer does not know the credential it just minted", which
	// fails the rotation before any push; "required" reads every 404 so;
	// "optional" reads every 404 as unsupported, for an issuer that
	// dropped verify. The PostgreSQL issuer always verifies and ignores it.
	IssuerVerify issuer.VerifyMode
	// IssuerVerifyRechecks is REKEY_ISSUER_VERIFY_RECHECKS, the waits
	// before verify asks again about a credential a 404 says the issuer
	// does not know, as a comma-separated list of durations ("1s,2s" by
	// default, issuer.DefaultVerifyRechecks); "none" takes the first 404.
	// At most MaxVerifyRechecks waits, MaxVerifyRecheckTime in all: a
	// worker slot waits with them.
	IssuerVerifyRechecks []time.Duration
	// PostgresServers is REKEY_POSTGRES_SERVERS (JSON), or the file named by
	// REKEY_POSTGRES_SERVERS_FILE: the servers REKEY_ISSUER=postgres
	// administers. No default.
	PostgresServers []pgissuer.Server
	// PostgresKey is REKEY_POSTGRES_KEY (base64, 32 bytes or more); empty
	// means one derived from REKEY_ENCRYPTION_KEYS (PostgresDerivationKey).
	PostgresKey []byte
	// DevPostgresURL is REKEY_DEV_POSTGRES_URL, the local PostgreSQL of
	// `rekey dev --issuer postgres`; empty means 127.0.0.1:5432.
	DevPostgresURL secret.String
	// Concurrency is REKEY_CONCURRENCY, tasks one worker process runs at once.
	// Default 10.
	Concurrency int
	// LogLevel is REKEY_LOG_LEVEL: debug, info, warn, error. Default info.
	LogLevel string
	// AuditRetention is REKEY_AUDIT_RETENTION, how long a deprovisioned
	// instance's record and audit events stay once none of its credentials
	// waits for revocation; then they expire. Default 720h (30 days), at
	// least 1h.
	AuditRetention time.Duration
	// Holds are REKEY_HOLD_* (holds.go).
	Holds

	// quoted names the variables Load took with the quotes wrapped around
	// their value (quoted.go).
	quoted []string
	// postgresSet names the PostgreSQL issuer's variables that are set,
	// whatever REKEY_ISSUER is (postgresIgnored).
	postgresSet []string
}

// Lookup reads one variable, like os.LookupEnv.
type Lookup func(name string) (string, bool)

// Load reads and checks every variable. Missing values take their defaults;
// each malformed value adds a sentence naming its variable, and the error
// lists them all, one per line (errors.Join).
func Load(env Lookup) (*Config, error) {
	p := parser{env: env}
	c := &Config{
		RedisURL:                p.str("REDIS_URL", ""),
		RedisVerifyTLS:          p.boolean("REKEY_REDIS_VERIFY_TLS", false),
		RedisPoolSize:           p.integer("REKEY_REDIS_POOL_SIZE", DefaultRedisPoolSize, 2, maxRedisPoolSize),
		RedisWaitReplicas:       p.integer("REKEY_REDIS_WAIT_REPLICAS", 0, 0, 16),
		Dyno:                    p.str("DYNO", ""),
		Port:                    p.integer("PORT", 5000, 1, 65535),
		HerokuAPIURL:            p.herokuURL("HEROKU_API_URL", "https://api.heroku.com"),
		HerokuIDURL:             p.herokuURL("HEROKU_ID_URL", "https://id.heroku.com"),
		OAuthClientSecret:       p.secret("HEROKU_OAUTH_CLIENT_SECRET"),
		AddonID:                 p.str("HEROKU_ADDON_ID", ""),
		AddonPassword:           p.secret("HEROKU_ADDON_PASSWORD"),
		SSOSalt:                 p.secret("HEROKU_SSO_SALT"),
		APIToken:                p.secret("REKEY_API_TOKEN"),
		APITokenPrevious:        p.secret("REKEY_API_TOKEN_PREVIOUS"),
		DashboardPassword:       p.secret("REKEY_DASHBOARD_PASSWORD"),
		EncryptionKeys:          p.keys("REKEY_ENCRYPTION_KEYS"),
		Grace:                   p.duration("REKEY_GRACE", 2*time.Hour, time.Second),
		PrivateSpaceGrace:       p.duration("REKEY_PRIVATE_SPACE_GRACE", 4*time.Hour, time.Second),
		MinGrace:                p.duration("REKEY_MIN_GRACE", DefaultMinGrace, time.Second),
		MaxGrace:                p.duration("REKEY_MAX_GRACE", DefaultMaxGrace, time.Minute),
		MaxPrevious:             p.integer("REKEY_MAX_PREVIOUS", 3, 0, 1000),
		CustomerOnePerGrace:     p.boolean("REKEY_CUSTOMER_ONE_PER_GRACE", true),
		InsecureCookies:         p.boolean("REKEY_INSECURE_COOKIES", false),
		CustomerRotationsPerDay: p.integer("REKEY_CUSTOMER_ROTATIONS_PER_DAY", 3, 0, 1000),
		RotationPeriod:          p.duration("REKEY_ROTATION_PERIOD", 2160*time.Hour, 0),
		MaintenanceWindow:       p.hourWindow("REKEY_MAINTENANCE_WINDOW"),
		QuarantineAfter:         p.integer("REKEY_QUARANTINE_AFTER", 3, 0, 1000),
		HerokuRate:              p.integer("REKEY_HEROKU_RATE", 4000, 1, 1_000_000),
		BreakerThreshold:        p.breakerThreshold("REKEY_BREAKER_THRESHOLD", 10),
		BreakerFraction:         p.fraction("REKEY_BREAKER_FRACTION", 0.5),
		BreakerWindow:           p.duration("REKEY_BREAKER_WINDOW", 5*time.Minute, 10*time.Second),
		RateScope:               p.oneOf("REKEY_RATE_SCOPE", ScopeAccount, ScopeAccount, ScopeInstance),
		Issuer:                  p.oneOf("REKEY_ISSUER", IssuerHTTP, IssuerHTTP, IssuerPostgres),
		IssuerURL:               p.httpURL("REKEY_ISSUER_URL", ""),
		IssuerSecret:            p.secret("REKEY_ISSUER_SECRET"),
		IssuerSecretPrevious:    p.secret("REKEY_ISSUER_SECRET_PREVIOUS"),
		IssuerAllowHTTP:         p.boolean("REKEY_ISSUER_ALLOW_HTTP", false),
		Issuer404PageRevoked:    p.boolean("REKEY_ISSUER_404_PAGE_REVOKED", false),
		IssuerVerify:            p.verifyMode("REKEY_ISSUER_VERIFY"),
		IssuerVerifyRechecks:    p.verifyRechecks("REKEY_ISSUER_VERIFY_RECHECKS"),
		PostgresServers:         p.postgresServers(),
		PostgresKey:             p.postgresKey("REKEY_POSTGRES_KEY"),
		DevPostgresURL:          p.secret("REKEY_DEV_POSTGRES_URL"),
		Concurrency:             p.integer("REKEY_CONCURRENCY", 10, 1, 1000),
		LogLevel:                p.oneOf("REKEY_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		AuditRetention:          p.duration("REKEY_AUDIT_RETENTION", store.DefaultAuditRetention, time.Hour),
	}
	c.Holds = p.holds()
	c.postgresSet = p.set("REKEY_POSTGRES_SERVERS", "REKEY_POSTGRES_SERVERS_FILE", "REKEY_POSTGRES_KEY")
	if err := c.checkHoldMax(p.str("REKEY_HOLD_MAX", "")); err != nil {
		p.fail(err)
	}
	if c.RedisURL != "" {
		if _, err := c.RedisOptions(); err != nil {
			p.fail(err)
		}
	}
	if err := c.checkIssuerURL(); err != nil {
		p.fail(err)
	}
	p.noteQuotes()
	c.quoted = slices.Sorted(maps.Keys(p.quoted))
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// DefaultMinGrace is REKEY_MIN_GRACE's default: the floor the tasks
// package checks another app's rotate tasks against (tasks.MinGrace).
const DefaultMinGrace = tasks.MinGrace

// GraceFloor is the shortest grace rekey accepts or applies: REKEY_MIN_GRACE,
// or REKEY_GRACE when that is shorter (a deployment that chose a short
// default grace may also ask for it per request).
func (c *Config) GraceFloor() time.Duration { return min(c.MinGrace, c.Grace) }

// DefaultMaxGrace is REKEY_MAX_GRACE's default: a week.
const DefaultMaxGrace = 7 * 24 * time.Hour

// GraceCeiling is the longest grace rekey accepts or applies:
// REKEY_MAX_GRACE, or the default graces when one is longer.
func (c *Config) GraceCeiling() time.Duration { return max(c.MaxGrace, c.Grace, c.PrivateSpaceGrace) }

// checkIssuerURL refuses a plain http:// issuer that is not on this
// machine unless REKEY_ISSUER_ALLOW_HTTP says so.
func (c *Config) checkIssuerURL() error {
	u, err := url.Parse(c.IssuerURL)
	if c.IssuerURL == "" || err != nil || u.Scheme != "http" || c.IssuerAllowHTTP || issuer.IsLoopback(u.Hostname()) {
		return nil
	}
	return errors.New("REKEY_ISSUER_URL must be https:// (http:// only to localhost, 127.0.0.0/8 or ::1), or set REKEY_ISSUER_ALLOW_HTTP=true to accept plain http")
}

// IssuerOptions are the options of the webhook issuer (REKEY_ISSUER=http)
// under REKEY_ISSUER_*; mem is where REKEY_ISSUER_VERIFY=auto remembers
// the issuer's verify answers for every process (the store).
func (c *Config) IssuerOptions(mem issuer.VerifyMemory) []issuer.Option {
	opts := []issuer.Option{issuer.WithAllowHTTP(c.IssuerAllowHTTP),
		issuer.WithNotFoundPageRevoked(c.Issuer404PageRevoked), issuer.WithVerify(c.IssuerVerify, mem),
		issuer.WithPreviousSecret(c.IssuerSecretPrevious)}
	if c.IssuerVerifyRechecks != nil { // nil: a Config not from Load keeps the default
		opts = append(opts, issuer.WithVerifyRechecks(c.IssuerVerifyRechecks...))
	}
	return opts
}

// RequireWorker checks what the worker process needs, naming every missing
// variable at once.
func (c *Config) RequireWorker() error {
	errs := c.coreMissing()
	if c.OAuthClientSecret.IsZero() && c.AddonPassword.IsZero() {
		errs = append(errs, errors.New("HEROKU_OAUTH_CLIENT_SECRET (V3) or HEROKU_ADDON_ID and HEROKU_ADDON_PASSWORD (V1) must be set"))
	}
	if !c.AddonPassword.IsZero() && c.AddonID == "" {
		errs = append(errs, errors.New("HEROKU_ADDON_ID must be set with HEROKU_ADDON_PASSWORD"))
	}
	if c.AddonID != "" && c.AddonPassword.IsZero() {
		// The worker has no V1 credentials then, and every V1 instance's
		// push fails, rotation after rotation.
		errs = append(errs, errors.New("HEROKU_ADDON_PASSWORD must be set with HEROKU_ADDON_ID (V1): without it "+
			"every V1 instance's rotation fails; unset HEROKU_ADDON_ID if no instance is V1"))
	}
	if c.Issuer == IssuerHTTP && (c.IssuerURL == "" || c.IssuerSecret.IsZero()) {
		msg := "REKEY_ISSUER_URL and REKEY_ISSUER_SECRET must be set when REKEY_ISSUER is http"
		if len(c.postgresSet) > 0 {
			msg += " (its default), though " + c.postgresSetPhrase() + " for the PostgreSQL issuer: " +
				"is REKEY_ISSUER=postgres missing?"
		}
		errs = append(errs, errors.New(msg))
	}
	errs = append(errs, c.postgresMissing()...)
	return errors.Join(errs...)
}

// RequireProducer checks what a process that only enqueues needs.
func (c *Config) RequireProducer() error { return errors.Join(c.coreMissing()...) }

// RequireWeb checks what the web process needs, naming every missing
// variable at once.
func (c *Config) RequireWeb() error {
	errs := c.coreMissing()
	if len(c.APIToken.Reveal()) < 16 {
		errs = append(errs, errors.New("REKEY_API_TOKEN must be set, at least 16 characters"))
	}
	if n := len(c.APITokenPrevious.Reveal()); n > 0 && n < 16 {
		errs = append(errs, errors.New("REKEY_API_TOKEN_PREVIOUS must be at least 16 characters, or unset"))
	}
	if len(c.DashboardPassword.Reveal()) < 8 {
		errs = append(errs, errors.New("REKEY_DASHBOARD_PASSWORD must be set, at least 8 characters"))
	}
	if c.SSOSalt.IsZero() {
		errs = append(errs, errors.New("HEROKU_SSO_SALT must be set"))
	}
	return errors.Join(errs...)
}

// coreMissing lists what every process that touches Redis needs and lacks.
func (c *Config) coreMissing() []error {
	var errs []error
	if c.RedisURL == "" {
		errs = append(errs, errors.New("REDIS_URL must be set (redis:// or rediss://)"))
	}
	if len(c.EncryptionKeys) == 0 {
		errs = append(errs, errors.New("REKEY_ENCRYPTION_KEYS must be set: comma-separated base64 32-byte keys. "+
			"For a command beside running rekey processes, use their value (heroku config:get REKEY_ENCRYPTION_KEYS): "+
			"a new key reads none of the sealed data; only for a first setup, with nothing stored yet, make one "+
			"with: openssl rand -base64 32"))
	}
	return errs
}

// DefaultRedisPoolSize is REKEY_REDIS_POOL_SIZE's default. go-redis's own,
// ten a CPU and ten more for pipelines, comes to 90 connections a process
// on a dyno that shows 8 CPUs, where Heroku Key-Value Store's smaller plans
// accept 20 to 80 in all. A task holds a connection only while one of its
// commands runs: a few milliseconds of a rotation that spends seconds in
// Heroku and the issuer (the fleet benchmark rotates 66 a second on three
// workers, each with a pool of ten). At least 2: with one, a long pipeline
// would hold up asynq's heartbeats and the health check's ping.
const DefaultRedisPoolSize = 10

// maxRedisPoolSize bounds a process's Redis connections, however set.
const maxRedisPoolSize = 1000

// RedisOptions turns REDIS_URL into client options. rediss:// skips
// certificate verification unless REKEY_REDIS_VERIFY_TLS is set, as Heroku
// Key-Value Store requires.
//
// A process opens at most RedisPoolSize connections for commands:
// pipelines share them rather than open a pool of their own, unless
// REDIS_URL says otherwise (pool_size, pipeline_pool_size). Subscriptions
// take one more each: a worker holds one per lane (worker.Lanes), where
// asynq listens for cancellations.
func (c *Config) RedisOptions() (*redis.Options, error) {
	if err := checkRedisScheme(c.RedisURL); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL is not a redis:// or rediss:// URL: %s", scrubRedisError(err))
	}
	if err := c.checkRedisTarget(opt); err != nil {
		return nil, err
	}
	if opt.PoolSize < 0 || opt.PoolSize > maxRedisPoolSize {
		// go-redis would panic making a negative pool; a huge one opens
		// connections past what a Heroku Key-Value Store plan allows.
		return nil, fmt.Errorf("REDIS_URL's pool_size must be from 1 to %d, got %d", maxRedisPoolSize, opt.PoolSize)
	}
	if opt.PoolSize == 0 {
		opt.PoolSize = c.RedisPoolSize
		if opt.PoolSize <= 0 {
			opt.PoolSize = DefaultRedisPoolSize
		}
	}
	if opt.PipelinePoolSize == 0 {
		opt.PipelinePoolSize = -1
	}
	if opt.TLSConfig != nil && !c.RedisVerifyTLS {
		opt.TLSConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // Heroku KVS uses self-signed certificates.
	}
	return opt, nil
}

// checkRedisScheme refuses a REDIS_URL that does not start with redis://
// or rediss:// (or go-redis's unix:) in rekey's words: a ':' or a '/'
// left out (redis//host, redis:/host), a bare host:port, another scheme.
// go-redis's own "invalid URL scheme" names only what it took for one. It
// names the scheme written only when it reads as one, since what precedes
// a ':' may be a user name or a password.
func checkRedisScheme(raw string) error {
	scheme, _, found := strings.Cut(raw, "://")
	switch s := strings.ToLower(scheme); {
	case found && (s == "redis" || s == "rediss"),
		strings.HasPrefix(strings.ToLower(raw), "unix:"): // unix:/path/redis.sock too
		return nil
	}
	if found && len(scheme) <= 16 && schemeWord.MatchString(scheme) {
		return fmt.Errorf("REDIS_URL starts with %s://, not redis:// or rediss://: write it redis://[user:password@]host:port/db "+
			"(rediss:// for TLS)", scheme)
	}
	return errors.New("REDIS_URL does not start with redis:// or rediss://: write it redis://[user:password@]host:port/db " +
		"(rediss:// for TLS); is a ':' or a '/' missing after redis?")
}

// schemeWord is what a URL's scheme is made of (RFC 3986).
var schemeWord = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// checkRedisTarget refuses a REDIS_URL that go-redis would read as another
// server or database than the one meant, and a connection less safe than
// REKEY_REDIS_VERIFY_TLS asks for. go-redis fills in localhost for a URL
// with no host (built from a variable left unset: redis://:pw@:6379), and
// net/url ends a URL at its first '#' (one in a password), so a process
// would run its commands against whatever Redis answers on its machine.
// The errors quote no part of the URL, which holds the password.
func (c *Config) checkRedisTarget(opt *redis.Options) error {
	if strings.Contains(c.RedisURL, "#") {
		return errors.New("REDIS_URL holds a '#', where a URL ends: percent-encode it (%23) in the password")
	}
	u, err := url.Parse(c.RedisURL)
	if err == nil && (u.Scheme == "redis" || u.Scheme == "rediss") && u.Hostname() == "" {
		return errors.New("REDIS_URL names no host (redis://[:password@]host:port/db): was it built from a variable left unset?")
	}
	// go-redis takes ?db= over the path's number without a word: /13?db=2
	// runs on database 2.
	if err == nil {
		if path, query := strings.Trim(u.Path, "/"), u.Query().Get("db"); path != "" && query != "" && path != query {
			return fmt.Errorf("REDIS_URL names database %s in its path and %s in ?db=: name one", clipDB(path), clipDB(query))
		}
		// go-redis reads a path of slashes alone as database 0: //, what
		// /${DB}/ becomes with DB unset. A single / names none, as ever.
		if len(u.Path) > 1 && strings.Trim(u.Path, "/") == "" && !u.Query().Has("db") {
			return errors.New("REDIS_URL's path names no database, only slashes, which would select database 0: " +
				"end it with /0, the database's number, or a single /")
		}
	}
	if opt.DB < 0 {
		// go-redis selects no database below 1: /-1 would run on database 0.
		return fmt.Errorf("REDIS_URL's database number must be 0 or more, got %d", opt.DB)
	}
	if !c.RedisVerifyTLS {
		return nil
	}
	switch {
	case opt.TLSConfig == nil:
		return errors.New("REKEY_REDIS_VERIFY_TLS is true but REDIS_URL is not rediss://: the connection would not use TLS at all")
	case opt.TLSConfig.InsecureSkipVerify:
		return errors.New("REKEY_REDIS_VERIFY_TLS is true but REDIS_URL says skip_verify=true: drop one of them")
	}
	return nil
}

// Sealer returns the sealer over REKEY_ENCRYPTION_KEYS.
func (c *Config) Sealer() (*seal.Sealer, error) {
	s, err := seal.New(c.EncryptionKeys...)
	if err != nil {
		return nil, fmt.Errorf("REKEY_ENCRYPTION_KEYS: %w", err)
	}
	return s, nil
}

// scrubRedisError keeps a parse error from echoing the URL, which may hold
// a password even without its scheme (":secret@host:6379"): net/url's
// errors quote the whole value, so only their cause is kept.
func scrubRedisError(err error) string {
	// net/url's own errors quote the part of the URL they stumbled on
	// (a bad escape, a "port" that is the start of a password holding a
	// / # or ?), which may be in the password: none is passed on.
	var esc url.EscapeError
	if errors.As(err, &esc) {
		return "a % in it is not followed by two hex digits (write a % in the password as %25)"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "it does not read as redis://[user:password@]host:port/db (write / # ? % in the password as %2F %23 %3F %25)"
	}
	if strings.Contains(err.Error(), "://") || strings.Contains(err.Error(), "@") {
		return "invalid URL"
	}
	return err.Error()
}

// parser reads variables, collecting one error per bad variable rather
// than stopping at the first.
type parser struct {
	env  Lookup
	errs []error
	// quoted holds the names whose value was wrapped in quotes.
	quoted map[string]bool
}

func (p *parser) fail(err error) { p.errs = append(p.errs, err) }

// maxShown is the longest refused value an error quotes.
const maxShown = 64

// secretNames are the variables holding secrets, besides the URLs shown
// never quotes.
var secretNames = []string{"REKEY_API_TOKEN", "REKEY_API_TOKEN_PREVIOUS", "REKEY_DASHBOARD_PASSWORD",
	"HEROKU_SSO_SALT", "HEROKU_ADDON_PASSWORD", "HEROKU_OAUTH_CLIENT_SECRET", "REKEY_ISSUER_SECRET",
	"REKEY_ISSUER_SECRET_PREVIOUS", "REKEY_ENCRYPTION_KEYS", "REKEY_POSTGRES_KEY"}

// shown is a refused value as its error quotes it, or a word saying why
// it does not: a URL, a user@ or a password, a generated-looking token or
// key pasted into the wrong variable (REKEY_ISSUER=postgres://admin:pw@…
// for REKEY_POSTGRES_SERVERS, a secret for its neighbour) is a secret, and
// start-up errors go to the dyno's log and every drain of it. A value
// holding one of secretNames' values is not quoted either, whatever it
// looks like: a password a person chose ("Harbor-Sunflower-1987") reads as
// words, and the operator pasting REKEY_DASHBOARD_PASSWORD into the
// variable below it had it quoted.
func (p *parser) shown(v string) string {
	if p.holdsSecret(v) {
		return fmt.Sprintf("a value of %d bytes not quoted here, since it holds the value of a secret "+
			"(was it meant for another variable?)", len(v))
	}
	return shown(v)
}

// holdsSecret reports whether v holds the value of one of secretNames (of
// one of its comma-separated parts, for a list of keys), in any case: some
// values are quoted in lower case.
func (p *parser) holdsSecret(v string) bool {
	for _, name := range secretNames {
		for part := range strings.SplitSeq(p.str(name, ""), ",") {
			if part = strings.TrimSpace(part); part != "" && strings.Contains(strings.ToLower(v), strings.ToLower(part)) {
				return true
			}
		}
	}
	return false
}

// shown is a refused value as its error quotes it, or a word saying why
// it does not, when it looks like a URL or a secret (parser.shown).
func shown(v string) string {
	if len(v) > maxShown || strings.Contains(v, "://") || strings.Contains(v, "@") || secret.LooksGenerated(v) {
		return fmt.Sprintf("a value of %d bytes not quoted here, since it looks like a URL or a secret "+
			"(was it meant for another variable?)", len(v))
	}
	return strconv.Quote(v)
}

func (p *parser) str(name, def string) string {
	if v, ok := p.env(name); ok && strings.TrimSpace(v) != "" {
		v = strings.TrimSpace(v)
		if isQuoted(v) {
			p.markQuoted(name)
		}
		return v
	}
	return def
}

// set are those of names that are set, in their order.
func (p *parser) set(names ...string) []string {
	var out []string
	for _, name := range names {
		if p.str(name, "") != "" {
			out = append(out, name)
		}
	}
	return out
}

func (p *parser) secret(name string) secret.String { return secret.New(p.str(name, "")) }

func (p *parser) integer(name string, def, lo, hi int) int {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(fmt.Errorf("%s must be a whole number from %d to %d, got %s", name, lo, hi, p.shown(v)))
	}
	return n
}

// breakerThreshold reads a count of distinct instances: 0 (off) or at
// least 2, since a single instance's 403 is that customer's own.
func (p *parser) breakerThreshold(name string, def int) int {
	n := p.integer(name, def, 0, 1_000_000)
	if n == 1 {
		p.fail(fmt.Errorf("%s must be 0 (off) or at least 2: one instance's 401 or 403 is that customer's, not the account's", name))
	}
	return n
}

// fraction reads a number above 0 and at most 1, such as 0.5.
func (p *parser) fraction(name string, def float64) float64 {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0 && f <= 1) {
		p.fail(fmt.Errorf("%s must be a fraction above 0 and at most 1, such as 0.5, got %s", name, p.shown(v)))
	}
	return f
}

func (p *parser) boolean(name string, def bool) bool {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(fmt.Errorf("%s must be true or false, got %s", name, p.shown(v)))
	}
	return b
}

func (p *parser) duration(name string, def, lo time.Duration) time.Duration {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d < 0 {
		hint := printable.RefusedDurationHint(err, v)
		if isQuoted(v) {
			hint = "" // noteQuotes says what is wrong
		}
		p.fail(fmt.Errorf("%s must be a duration such as 2h or 90m (at least %s), got %s%s", name, lo, p.shown(v), hint))
	}
	return d
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(p.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(fmt.Errorf("%s must be one of %s, got %s", name, strings.Join(allowed, ", "), p.shown(v)))
	return def
}

// Bounds of REKEY_ISSUER_VERIFY_RECHECKS.
const (
	MaxVerifyRechecks    = 10
	MaxVerifyRecheckTime = 30 * time.Second
)

// verifyRechecks reads a comma-separated list of positive durations within
// the bounds above, "none" for an empty one, issuer.DefaultVerifyRechecks
// when unset.
func (p *parser) verifyRechecks(name string) []time.Duration {
	def := issuer.DefaultVerifyRechecks
	v := strings.TrimSpace(p.str(name, ""))
	switch {
	case v == "":
		return slices.Clone(def)
	case strings.EqualFold(v, "none"):
		return []time.Duration{}
	}
	var out []time.Duration
	var total time.Duration
	for f := range strings.SplitSeq(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			p.fail(fmt.Errorf("%s must be positive durations separated by commas, such as 1s,2s, or none; got %s", name, p.shown(v)))
			return slices.Clone(def)
		}
		if d > MaxVerifyRecheckTime-total { // compared so, the sum cannot overflow
			total = MaxVerifyRecheckTime + 1
			break
		}
		out, total = append(out, d), total+d
	}
	if len(out) > MaxVerifyRechecks || total > MaxVerifyRecheckTime {
		p.fail(fmt.Errorf("%s must be at most %d waits of %s in all, got %s", name, MaxVerifyRechecks, MaxVerifyRecheckTime, p.shown(v)))
		return slices.Clone(def)
	}
	return out
}

// verifyMode reads one of issuer.VerifyModes, the first by default.
func (p *parser) verifyMode(name string) issuer.VerifyMode {
	allowed := make([]string, len(issuer.VerifyModes))
	for i, m := range issuer.VerifyModes {
		allowed[i] = string(m)
	}
	return issuer.VerifyMode(p.oneOf(name, allowed[0], allowed...))
}

// hourWindow reads "HH-HH": start 0-23, end 1-24, different, not the
// whole day. It returns the window as "HH-HH", or "" when unset.
func (p *parser) hourWindow(name string) string {
	v := p.str(name, "")
	if v == "" {
		return ""
	}
	a, b, ok := strings.Cut(v, "-")
	start, err1 := strconv.Atoi(a)
	end, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || start < 0 || start > 23 || end < 1 || end > 24 ||
		start == end || start == 0 && end == 24 {
		p.fail(fmt.Errorf("%s must be hours of the day in UTC as HH-HH, such as 02-05 (22-04 spans midnight), got %s", name, p.shown(v)))
		return ""
	}
	return fmt.Sprintf("%02d-%02d", start, end)
}

func (p *parser) httpURL(name, def string) string {
	v := strings.TrimRight(p.str(name, def), "/")
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p.fail(fmt.Errorf("%s must be an http:// or https:// URL", name))
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		// The Heroku and issuer clients refuse them (credentials go in
		// their own variables); the value is not quoted, it may hold one.
		p.fail(fmt.Errorf("%s must be a URL without a user, a password, a query or a fragment", name))
	}
	return v
}

// herokuURL reads a Heroku base URL: https://, or http:// to this machine
// (a fake Heroku), since OAuth tokens, the OAuth client secret and every
// new credential's config travel to it; and a host alone, since rekey
// appends Heroku's paths (a token endpoint pasted whole, /oauth/token,
// would fail every provisioning as a refused grant).
func (p *parser) herokuURL(name, def string) string {
	v := p.httpURL(name, def)
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return v // httpURL said why
	}
	switch {
	case u.Scheme == "http" && !issuer.IsLoopback(u.Hostname()):
		p.fail(fmt.Errorf("%s must be https:// (http:// only to localhost, 127.0.0.0/8 or ::1): OAuth tokens and new credentials travel to it", name))
	case u.Path != "":
		p.fail(fmt.Errorf("%s must name a host only, such as %s, without a path: rekey adds Heroku's paths", name, def))
	}
	return v
}

func (p *parser) keys(name string) [][]byte {
	v := p.str(name, "")
	if v == "" {
		return nil
	}
	keys, err := seal.ParseKeys(v)
	if err != nil {
		p.fail(fmt.Errorf("%s: %w", name, err))
	}
	return keys
}

// clipDB is a database number as REDIS_URL wrote it, cut short: it is no
// secret, but it is outside text.
func clipDB(s string) string {
	if len(s) > 8 {
		return strconv.Quote(s[:8]) + "..."
	}
	return strconv.Quote(s)
}
