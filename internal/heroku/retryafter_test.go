package heroku

import (
	"testing"
	"time"
)

// Retry-After is taken as seconds or a date, and never for longer than
// MaxRetryAfter: a year, a date in 2100, or seconds whose nanoseconds
// overflow would park a rotation, and its instance, for that long (or, once
// negative, not at all).
func TestRetryAfterIsCapped(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	for header, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"900":                           MaxRetryAfter,
		"31536000":                      MaxRetryAfter,
		"9223372036":                    MaxRetryAfter,
		"99999999999999999999":          0,
		"Tue, 01 Dec 2026 15:02:00 GMT": 2 * time.Minute,
		"Fri, 01 Jan 2100 00:00:00 GMT": MaxRetryAfter,
		"Mon, 30 Nov 2026 15:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(header, now); got != want {
			t.Errorf("Retry-After %q = %s, want %s", header, got, want)
		}
	}
}
