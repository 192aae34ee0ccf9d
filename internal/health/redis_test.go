package health_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/testbuf"
)

// lockedBuffer is a log sink the test's goroutines share.
type lockedBuffer = testbuf.Buffer

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		<-tick.C
	}
}

// TestRedisLogsOneLinePerChangeOfState plays Redis down at start, then up,
// then down and up again: many pings fail, and the log holds one line per
// change, with the password scrubbed from the error.
func TestRedisLogsOneLinePerChangeOfState(t *testing.T) {
	t.Parallel()
	var answering atomic.Bool
	var pings atomic.Int64
	var logs lockedBuffer
	w, err := health.NewRedis(health.Params{
		Ping: func(context.Context) error {
			pings.Add(1)
			if answering.Load() {
				return nil
			}
			return errors.New("dial redis://:hunter2@db:6379: connection refused")
		},
		Logger:     zerolog.New(&logs),
		Redact:     func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") },
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Interval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	waitUntil(t, "ten failed pings", func() bool { return pings.Load() >= 10 })
	if w.Up() || !w.Quiet() {
		t.Fatal("Up() = true while every ping fails")
	}
	waited := make(chan error, 1)
	go func() { waited <- w.Wait(ctx) }()
	answering.Store(true)
	if err := <-waited; err != nil || !w.Up() {
		t.Fatalf("Wait = %v, Up = %v; want Redis up", err, w.Up())
	}
	answering.Store(false)
	waitUntil(t, "down again", func() bool { return !w.Up() })
	n := pings.Load()
	waitUntil(t, "ten more failed pings", func() bool { return pings.Load() >= n+10 })
	answering.Store(true)
	waitUntil(t, "up again", w.Up)

	out := logs.String()
	if d, u := strings.Count(out, `"redis_down"`), strings.Count(out, `"redis_up"`); d != 2 || u != 2 {
		t.Fatalf("%d redis_down and %d redis_up lines after %d pings, want 2 and 2:\n%s", d, u, pings.Load(), out)
	}
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "[redacted]") {
		t.Fatalf("the password reached the log:\n%s", out)
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	w, _ := health.NewRedis(health.Params{Ping: func(context.Context) error { return errors.New("down") }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	var none *health.Redis
	if !none.Up() || none.Wait(ctx) != nil {
		t.Fatal("a nil watcher must report Redis up")
	}
}

// TestLibraryErrorPingsAtOnce plays an outage that starts while Redis is
// up: the first library error is logged and wakes the watcher, whose
// Interval is an hour; the next ones are demoted; the ping finds Redis down.
func TestLibraryErrorPingsAtOnce(t *testing.T) {
	t.Parallel()
	var answering atomic.Bool
	answering.Store(true)
	w, _ := health.NewRedis(health.Params{
		Ping: func(context.Context) error {
			if answering.Load() {
				return nil
			}
			return errors.New("connection refused")
		},
		Interval: time.Hour, MinBackoff: time.Hour,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	waitUntil(t, "up", w.Up)
	answering.Store(false)
	if w.LibraryError() {
		t.Fatal("the first library error while Redis was up was demoted")
	}
	waitUntil(t, "the ping the library error asked for", func() bool { return !w.Up() })
	if !w.LibraryError() {
		t.Fatal("a library error while Redis is down was not demoted")
	}
}

// A Redis that answers but refuses REDIS_URL's password or database is
// not "down": waiting alone does not mend a typo or a password rotated
// since. The one redis_down line says which, and names REDIS_URL.
func TestRedisDownSaysWhenRedisRefusesTheURL(t *testing.T) {
	t.Parallel()
	own := redistest.StartServerAt(t, redistest.FreePort(t))
	if err := own.Client.ConfigSet(context.Background(), "requirepass", "right-pw").Err(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opt  redis.Options
		want string
	}{
		{"wrong password", redis.Options{Addr: own.Addr, Password: "wrong-pw"}, "refuses REDIS_URL's user or password"},
		{"no password", redis.Options{Addr: own.Addr}, "refuses REDIS_URL's user or password"},
		{"no such database", redis.Options{Addr: own.Addr, Password: "right-pw", DB: 99}, "no database of REDIS_URL's number"},
		{"nothing listens", redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}, "Redis does not answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(&tc.opt)
			defer c.Close()
			var logs lockedBuffer
			w, err := health.NewRedis(health.Params{Ping: func(ctx context.Context) error { return c.Ping(ctx).Err() },
				Logger: zerolog.New(&logs), MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if w.Check(context.Background()) {
				t.Fatal("the ping succeeded")
			}
			if out := logs.String(); !strings.Contains(out, `"redis_down"`) || !strings.Contains(out, tc.want) {
				t.Errorf("log = %s; want redis_down saying %q", out, tc.want)
			}
		})
	}
}
