package health_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// REDIS_URL's scheme that disagrees with the server's TLS fails without a
// word of why (a timeout one way, EOF the other): the one redis_down line
// names the scheme to use. A server that agrees, and an address where
// nothing listens, get no such hint.
func TestRedisDownSaysWhenTLSDisagreesWithTheURL(t *testing.T) {
	t.Parallel()
	plain := redistest.StartServerAt(t, redistest.FreePort(t)).Addr
	tlsOnly := redistest.StartTLSServer(t)
	withTLS := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // the test's self-signed server.
	cases := []struct {
		name     string
		opt      redis.Options
		want     string // in the redis_down line; "" for a ping that succeeds
		dontWant string
	}{
		{"rediss to a plain server", redis.Options{Addr: plain, TLSConfig: withTLS, MaxRetries: -1},
			"answers without TLS: use redis://", ""},
		{"redis to a TLS-only server", redis.Options{Addr: tlsOnly, MaxRetries: -1},
			"takes TLS connections only: use rediss://", ""},
		{"rediss to a TLS-only server", redis.Options{Addr: tlsOnly, TLSConfig: withTLS}, "", ""},
		{"rediss where nothing listens", redis.Options{Addr: "127.0.0.1:1", TLSConfig: withTLS, MaxRetries: -1},
			"Redis does not answer", "TLS"},
		{"redis where nothing listens", redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1},
			"Redis does not answer", "TLS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := redis.NewClient(&tc.opt)
			defer c.Close()
			var logs lockedBuffer
			ping := health.PingTLSChecked(func(ctx context.Context) error { return c.Ping(ctx).Err() },
				tc.opt.Addr, tc.opt.TLSConfig != nil)
			w, err := health.NewRedis(health.Params{Ping: ping, Logger: zerolog.New(&logs),
				MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			up := w.Check(context.Background())
			out := logs.String()
			switch {
			case tc.want == "" && !up:
				t.Fatalf("the ping failed: %s", out)
			case tc.want != "" && (up || !strings.Contains(out, `"redis_down"`) || !strings.Contains(out, tc.want)):
				t.Errorf("log = %s; want redis_down saying %q", out, tc.want)
			case tc.dontWant != "" && strings.Contains(out, tc.dontWant):
				t.Errorf("log = %s; want no word of %q", out, tc.dontWant)
			}
		})
	}
}
