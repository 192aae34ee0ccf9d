package printable

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Duration writes d as an operator sets it, without the zero units Go's
// String adds ("4h", "1h30m", "5m" rather than "4h0m0s"), and, for whole
// days from two on, how many ("2160h (90 days)"): the form the
// environment takes (REKEY_ROTATION_PERIOD=2160h) beside the one people
// count in.
func Duration(d time.Duration) string {
	s := Setting(d)
	if day := 24 * time.Hour; d >= 2*day && d%day == 0 {
		s += fmt.Sprintf(" (%d days)", d/day)
	}
	return s
}

// Setting writes d as an operator sets it in the environment, without
// the zero units of Go's String: "2160h", "1h30m", "5m".
func Setting(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// DurationHint says, for a value time.ParseDuration refused, how to write
// it: Go durations have no days nor weeks, which is what people reach for
// ("90d", "2w"), so such a value is given back in hours; any other is
// reminded of the units Go takes. White space around v is no matter, as
// the settings and flags that take a duration ignore it; white space
// inside it is named as what is wrong.
func DurationHint(v string) string {
	v = strings.TrimSpace(v)
	if strings.ContainsFunc(v, unicode.IsSpace) {
		joined := strings.Join(strings.Fields(v), "")
		if _, err := time.ParseDuration(joined); err == nil {
			return fmt.Sprintf("no space inside a duration: %q is %s", v, joined)
		}
		return "no space inside a duration; units ns, us, ms, s, m and h, in lower case; 90 days is 2160h"
	}
	for _, u := range []struct {
		suffix, name string
		hours        int
	}{{"d", "days", 24}, {"w", "weeks", 24 * 7}} {
		n, ok := strings.CutSuffix(strings.ToLower(v), u.suffix)
		if count, err := strconv.Atoi(n); ok && err == nil && count > 0 && count <= 100000 {
			return fmt.Sprintf("Go durations have no %s: %s is %dh", u.name, v, count*u.hours)
		}
	}
	return "units ns, us, ms, s, m and h, in lower case; 90 days is 2160h"
}

// RefusedDurationHint is DurationHint(v) in parentheses after a space when
// time.ParseDuration refused v (err), for the end of a sentence; "" when it
// did not (a value refused for its size, not its form).
func RefusedDurationHint(err error, v string) string {
	if err == nil {
		return ""
	}
	return " (" + DurationHint(v) + ")"
}
