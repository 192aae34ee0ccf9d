package herokufake

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults of a Fake built without options.
const (
	DefaultManifestID       = "myaddon"
	DefaultManifestPassword = "manifest-password"
	DefaultClientSecret     = "oauth-client-secret"
)

// Option configures a Fake. Options check their input; New panics on a bad one.
type Option func(*settings) error

type settings struct {
	limits       limits
	perAddon     bool
	accessTTL    time.Duration
	commonDelay  time.Duration
	privateDelay time.Duration
	dynos        int
	manifestID   string
	manifestPass string
	clientSecret string
	latency      time.Duration
	errorRate    float64
	seed         uint64
	now          func() time.Time
}

func defaults() settings {
	return settings{
		limits:       limits{capacity: 4500, refill: 75, per: time.Minute},
		accessTTL:    8 * time.Hour,
		commonDelay:  2 * time.Second,
		privateDelay: 6 * time.Second,
		dynos:        2,
		manifestID:   DefaultManifestID,
		manifestPass: DefaultManifestPassword,
		clientSecret: DefaultClientSecret,
		now:          time.Now,
	}
}

// WithBucket sets the rate-limit bucket: at most capacity tokens, refilled
// continuously at refill tokens per period. The default is Heroku's 4500
// tokens refilled at 75 per minute.
func WithBucket(capacity, refill int, per time.Duration) Option {
	return func(s *settings) error {
		if capacity <= 0 || refill <= 0 || per <= 0 {
			return errors.New("WithBucket needs a positive capacity, refill and period")
		}
		if int64(capacity) > math.MaxInt64/int64(per) {
			return errors.New("WithBucket capacity times period overflows")
		}
		s.limits = limits{capacity: int64(capacity), refill: int64(refill), per: per}
		return nil
	}
}

// WithPerAddonBuckets gives every add-on authorization its own bucket instead
// of one bucket for the whole account. Heroku does not document which it does.
// V1 calls, authenticated by the manifest, keep drawing on the account bucket.
func WithPerAddonBuckets() Option {
	return func(s *settings) error {
		s.perAddon = true
		return nil
	}
}

// WithAccessTokenTTL sets how long an OAuth access token lives (default 8h).
func WithAccessTokenTTL(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return errors.New("WithAccessTokenTTL needs a positive duration")
		}
		s.accessTTL = d
		return nil
	}
}

// WithRestartDelay sets how long after a release a dyno runs the new config,
// in the Common Runtime and in Private Spaces (defaults 2s and 6s; Heroku's
// are minutes).
func WithRestartDelay(common, privateSpace time.Duration) Option {
	return func(s *settings) error {
		if common < 0 || privateSpace < 0 {
			return errors.New("WithRestartDelay needs non-negative delays")
		}
		s.commonDelay, s.privateDelay = common, privateSpace
		return nil
	}
}

// WithDynos sets how many dynos every app runs (default 2).
func WithDynos(n int) Option {
	return func(s *settings) error {
		if n < 0 {
			return fmt.Errorf("WithDynos needs a non-negative count, got %d", n)
		}
		s.dynos = n
		return nil
	}
}

// WithClock makes the Fake read time from now instead of time.Now. Token
// expiry, code expiry, bucket refill and dyno restarts all follow it.
func WithClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now == nil {
			return errors.New("WithClock needs a function")
		}
		s.now = now
		return nil
	}
}

// WithV1Credentials sets the manifest id and password V1 calls authenticate with.
func WithV1Credentials(manifestID, password string) Option {
	return func(s *settings) error {
		if manifestID == "" || password == "" {
			return errors.New("WithV1Credentials needs a manifest id and a password")
		}
		s.manifestID, s.manifestPass = manifestID, password
		return nil
	}
}

// WithOAuthClientSecret sets the client secret /oauth/token requires.
func WithOAuthClientSecret(secret string) Option {
	return func(s *settings) error {
		if secret == "" {
			return errors.New("WithOAuthClientSecret needs a secret")
		}
		s.clientSecret = secret
		return nil
	}
}

// WithLatency delays every Heroku API answer by d (real time, not the clock).
// A client that gives up first gets no answer.
func WithLatency(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return errors.New("WithLatency needs a non-negative duration")
		}
		s.latency = d
		return nil
	}
}

// WithErrorRate answers a random share rate (0 to 1) of calls to Heroku's
// endpoints, /oauth/token included, with 500 and no change, drawn from a generator seeded with seed so a failing
// test can be replayed.
func WithErrorRate(rate float64, seed uint64) Option {
	return func(s *settings) error {
		if rate < 0 || rate > 1 {
			return fmt.Errorf("WithErrorRate needs a rate between 0 and 1, got %v", rate)
		}
		s.errorRate, s.seed = rate, seed
		return nil
	}
}
