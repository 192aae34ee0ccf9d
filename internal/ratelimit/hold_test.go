package ratelimit_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

func TestBackoffAfter429(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const first, longest = 300 * time.Millisecond, 1200 * time.Millisecond
	p := ratelimit.Params{PerHour: perSecond(20), Burst: 4, Backoff: first, MaxBackoff: longest}
	a, b := newProcess(t, r, p), newProcess(t, r, p)
	left := func() time.Duration { return holdLeft(t, r.Client, ratelimit.ScopeAccount, "addon") }
	expire := func() { eventually(t, 5*time.Second, "the pause never ended", func() bool { return left() == 0 }) }

	steps := []struct {
		name   string
		by     process
		status int
		want   time.Duration // pause in force afterwards; zero: unchanged
	}{
		{"first 429", a, http.StatusTooManyRequests, first},
		{"429 during the pause", b, http.StatusTooManyRequests, first},
		{"429 after the pause doubles", b, http.StatusTooManyRequests, 2 * first},
		{"and again", a, http.StatusTooManyRequests, 4 * first},
		{"up to the cap", a, http.StatusTooManyRequests, longest},
		{"success resets", a, http.StatusOK, 0},
		{"429 after success", b, http.StatusTooManyRequests, first},
	}
	for i, s := range steps {
		if i >= 2 && s.want != 0 {
			expire()
		}
		observed := time.Now()
		s.by.Observe("addon", -1, s.status)
		if s.want == 0 {
			continue
		}
		// The pause runs from the 429: what is left of it is less by the
		// time taken since, which a loaded machine makes longer.
		got, since := left(), time.Since(observed)
		if got <= s.want-since-50*time.Millisecond || got > s.want {
			t.Fatalf("%s: pause of %s %s after the 429, want %s", s.name, got, since.Round(time.Millisecond), s.want)
		}
	}

	start, want := time.Now(), left()
	if err := b.Wait(t.Context(), "addon"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < want-10*time.Millisecond {
		t.Errorf("Wait returned after %s, during a pause of %s", took, want)
	}
	if got := a.Stats().Backoffs + b.Stats().Backoffs; got != 5 {
		t.Errorf("Stats counted %d pauses after 429, want 5", got)
	}
}

func TestLowWaterSlowsDown(t *testing.T) {
	t.Parallel()
	const refill, longest = 10 * time.Millisecond, 500 * time.Millisecond
	tests := []struct {
		remaining int
		want      time.Duration
	}{
		{-1, 0}, // no header
		{150, 0},
		{100, 0},
		{99, refill},
		{60, 40 * refill},
		{0, longest},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("remaining=%d", tt.remaining), func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			p := ratelimit.Params{
				PerHour: perSecond(20), Burst: 4, LowWater: 100, HerokuRefill: refill, MaxBackoff: longest,
			}
			a, b := newProcess(t, r, p), newProcess(t, r, p)
			a.Observe("addon", tt.remaining, http.StatusOK)
			left := holdLeft(t, r.Client, ratelimit.ScopeAccount, "addon")
			if left > tt.want || left < tt.want-50*time.Millisecond {
				t.Fatalf("pause of %s, want %s", left, tt.want)
			}
			start := time.Now()
			if err := b.Wait(t.Context(), "addon"); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < left-10*time.Millisecond {
				t.Errorf("another process's Wait returned after %s, during a pause of %s", took, left)
			}
		})
	}
}

// A low-water answer after a 429 would pause for about a millisecond (one
// call short of the low water, at a refill of one a millisecond): the 429's
// pause of two seconds must stay, whatever a busy machine's scheduling
// takes of it before it is read.
func TestLowWaterNeverShortensAPause(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := newProcess(t, r, ratelimit.Params{PerHour: perSecond(20), Backoff: 2 * time.Second, HerokuRefill: time.Millisecond})
	l.Observe("addon", -1, http.StatusTooManyRequests)
	l.Observe("addon", 99, http.StatusOK)
	if left := holdLeft(t, r.Client, ratelimit.ScopeAccount, "addon"); left < time.Second {
		t.Errorf("a low-water pause cut a 429 pause to %s", left)
	}
}
