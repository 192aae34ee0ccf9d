package redisclock_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/redisclock"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// fakeRedis answers TIME with its own clock, after a round trip during
// which the local clock moves on by rtt.
type fakeRedis struct {
	now   time.Time
	rtt   time.Duration
	local *time.Time
	err   error
	calls atomic.Int64
}

var _ redisclock.Source = (*fakeRedis)(nil)

func (f *fakeRedis) Time(context.Context) *redis.TimeCmd {
	f.calls.Add(1)
	*f.local = f.local.Add(f.rtt / 2)
	at := f.now
	*f.local = f.local.Add(f.rtt / 2)
	return redis.NewTimeCmdResult(at, f.err)
}

func TestMeasureFindsTheOffset(t *testing.T) {
	t.Parallel()
	redisNow := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		local  time.Duration // the local clock against Redis's
		rtt    time.Duration
		skewed bool
	}{
		{"local two hours ahead", 2 * time.Hour, 4 * time.Millisecond, true},
		{"local five minutes behind", -5 * time.Minute, 10 * time.Millisecond, true},
		{"local 500ms ahead", 500 * time.Millisecond, 2 * time.Millisecond, false},
		{"local on time", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			local := redisNow.Add(tc.local).Add(-tc.rtt / 2)
			src := &fakeRedis{now: redisNow, rtt: tc.rtt, local: &local}
			var logs bytes.Buffer
			c, err := redisclock.New(redisclock.Params{Redis: src, Local: func() time.Time { return local },
				Logger: zerolog.New(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Now(); !got.Equal(local) {
				t.Fatalf("before any measurement Now = %s, want the local clock %s", got, local)
			}
			if _, ok := c.Offset(); ok {
				t.Fatal("Offset says measured before any measurement")
			}
			s, err := c.Measure(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if s.Offset != -tc.local || s.Uncertainty != tc.rtt/2 {
				t.Fatalf("sample = %+v, want offset %s ± %s", s, -tc.local, tc.rtt/2)
			}
			if got, _ := c.Offset(); got != s {
				t.Fatalf("Offset = %+v, want the sample %+v", got, s)
			}
			// The local clock is now rtt/2 past the instant Redis answered.
			if got, want := c.Now(), redisNow.Add(tc.rtt/2); !got.Equal(want) {
				t.Fatalf("corrected Now = %s, want Redis's time %s", got, want)
			}
			if warned := strings.Contains(logs.String(), `"message":"clock_skew"`); warned != tc.skewed {
				t.Fatalf("clock_skew logged = %v, want %v:\n%s", warned, tc.skewed, logs.String())
			}
		})
	}
}

// TestClockSkewIsLoggedOncePerEpisode: the warning comes when the offset
// passes the threshold, not at every measurement, and again when skew
// appears later after it had ended.
func TestClockSkewIsLoggedOncePerEpisode(t *testing.T) {
	t.Parallel()
	redisNow := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	local := redisNow
	src := &fakeRedis{now: redisNow, local: &local}
	var logs bytes.Buffer
	c, _ := redisclock.New(redisclock.Params{Redis: src, Local: func() time.Time { return local },
		Logger: zerolog.New(&logs)})
	ctx := context.Background()
	for _, ahead := range []time.Duration{3 * time.Second, 4 * time.Second, 0, time.Second, -3 * time.Second} {
		local = redisNow.Add(ahead)
		if _, err := c.Measure(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := logs.String()
	if n := strings.Count(got, `"message":"clock_skew"`); n != 2 {
		t.Fatalf("clock_skew logged %d times, want 2 (at 3s ahead, at 3s behind):\n%s", n, got)
	}
	if n := strings.Count(got, `"message":"clock_skew_ended"`); n != 1 {
		t.Fatalf("clock_skew_ended logged %d times, want 1:\n%s", n, got)
	}
	for _, want := range []string{`"offset_ms":-3000`, "3s ahead of Redis's", `"offset_ms":3000`, "3s behind Redis's"} {
		if !strings.Contains(got, want) {
			t.Fatalf("the logs lack %q:\n%s", want, got)
		}
	}
}

// TestFailedMeasurementKeepsTheOffset: Redis refusing TIME leaves the last
// correction in place rather than falling back to the local clock.
func TestFailedMeasurementKeepsTheOffset(t *testing.T) {
	t.Parallel()
	redisNow := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	local := redisNow.Add(time.Hour)
	src := &fakeRedis{now: redisNow, local: &local}
	c, _ := redisclock.New(redisclock.Params{Redis: src, Local: func() time.Time { return local }})
	if _, err := c.Measure(context.Background()); err != nil {
		t.Fatal(err)
	}
	src.err = errors.New("connection refused")
	if _, err := c.Measure(context.Background()); err == nil {
		t.Fatal("Measure with Redis refusing succeeded")
	}
	if got, _ := c.Offset(); got.Offset != -time.Hour {
		t.Fatalf("offset after a failed measurement = %s, want the last one, -1h", got.Offset)
	}
}

// TestRunMeasuresAtStartAndAgain: Run takes its first measurement at once
// and then one TIME per interval, and stops with its context.
func TestRunMeasuresAtStartAndAgain(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ahead := 2 * time.Hour
	src := &countingRedis{Source: r.Client}
	c, _ := redisclock.New(redisclock.Params{Redis: src, Interval: 20 * time.Millisecond,
		Local: func() time.Time { return time.Now().Add(ahead) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	select {
	case <-c.Measured():
	case <-time.After(10 * time.Second):
		t.Fatal("no measurement within 10s")
	}
	s, _ := c.Offset()
	// Redis runs on this machine's clock: the offset undoes the 2 h.
	if d := (s.Offset + ahead).Abs(); d > time.Second {
		t.Fatalf("offset = %s, want about -2h against a real Redis", s.Offset)
	}
	if d := c.Now().Sub(time.Now()).Abs(); d > time.Second {
		t.Fatalf("corrected Now is %s from the real time", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for src.calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d measurements in 10s at an interval of 20ms", src.calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// countingRedis counts the TIME commands sent to a real Redis.
type countingRedis struct {
	redisclock.Source
	calls atomic.Int64
}

func (c *countingRedis) Time(ctx context.Context) *redis.TimeCmd {
	c.calls.Add(1)
	return c.Source.Time(ctx)
}

// A TIME that waited behind a long script in Redis (here 800 ms) reads
// Redis's clock late, and taken as it is would move Now ahead by half the
// wait: it is not taken while the kept sample is fresh, and is once the
// kept one is old, so that a link slow for good is followed.
func TestASlowSampleDoesNotMoveTheClock(t *testing.T) {
	t.Parallel()
	redisNow := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	local := redisNow.Add(-time.Millisecond) // on time: the round trip's midpoint is redisNow
	src := &fakeRedis{now: redisNow, rtt: 2 * time.Millisecond, local: &local}
	c, err := redisclock.New(redisclock.Params{Redis: src, Local: func() time.Time { return local }, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Measure(context.Background()); err != nil {
		t.Fatal(err)
	}
	good, _ := c.Offset()
	step := time.Duration(0) // Redis's clock less the local one, once the local one stepped
	slow := func() redisclock.Sample {
		t.Helper()
		src.now, src.rtt = local.Add(step+800*time.Millisecond), 800*time.Millisecond // read at the end of the wait
		s, err := c.Measure(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := slow(); s.Offset != 400*time.Millisecond {
		t.Fatalf("the slow sample = %+v, want it 400 ms off", s)
	}
	if got, _ := c.Offset(); got != good {
		t.Errorf("after a sample 400 times less sure, Offset = %+v, want the kept %+v", got, good)
	}
	// The machine's clock steps 2 s ahead (NTP): a slow sample now rules
	// out the kept offset, and is taken however unsure.
	local, step = local.Add(2*time.Second), -2*time.Second
	want := -2*time.Second + 400*time.Millisecond
	if s := slow(); s.Offset != want {
		t.Fatalf("the slow sample after the step = %+v, want offset %s", s, want)
	}
	if got, _ := c.Offset(); got.Offset != want {
		t.Errorf("after the clock stepped, Offset = %+v, want the slow sample's", got)
	}
	// A sure sample again, then, 10 minutes on, a slow one within its
	// range: taken, the kept one being old.
	src.now, src.rtt = local.Add(step+time.Millisecond), 2*time.Millisecond
	if _, err := c.Measure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Offset(); got.Uncertainty != time.Millisecond {
		t.Fatalf("a sure sample after the slow ones: Offset = %+v", got)
	}
	local = local.Add(10 * time.Minute)
	slow()
	if got, _ := c.Offset(); got.Uncertainty != 400*time.Millisecond {
		t.Errorf("10 minutes on, Offset = %+v, want the slow sample taken", got)
	}
}
