package printable_test

import (
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/printable"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                 "0s",
		1500 * time.Millisecond:           "1.5s",
		90 * time.Second:                  "1m30s",
		5 * time.Minute:                   "5m",
		4 * time.Hour:                     "4h",
		90 * time.Minute:                  "1h30m",
		time.Hour + time.Second:           "1h0m1s",
		24 * time.Hour:                    "24h",
		2160 * time.Hour:                  "2160h (90 days)",
		49 * time.Hour:                    "49h",
		-5 * time.Minute:                  "-5m",
		2*time.Hour + 30*time.Millisecond: "2h0m0.03s",
	} {
		if got := printable.Duration(d); got != want {
			t.Errorf("Duration(%d) = %q, want %q", d, got, want)
		}
	}
}

func TestDurationHint(t *testing.T) {
	for v, want := range map[string]string{
		"90d":  "Go durations have no days: 90d is 2160h",
		"2W":   "Go durations have no weeks: 2W is 336h",
		"2H":   "units ns, us, ms, s, m and h, in lower case; 90 days is 2160h",
		"1.5d": "units ns, us, ms, s, m and h, in lower case; 90 days is 2160h",
		"-3d":  "units ns, us, ms, s, m and h, in lower case; 90 days is 2160h",
		"soon": "units ns, us, ms, s, m and h, in lower case; 90 days is 2160h",
	} {
		if got := printable.DurationHint(v); got != want {
			t.Errorf("DurationHint(%q) = %q, want %q", v, got, want)
		}
	}
}
