package config

import (
	"fmt"
	"time"
)

// Warning is a setting Load accepts but that an operator must hear of:
// every long-running process (web, worker, clock) logs each one at start-up
// as a warning whose message is Name and whose "detail" is Detail. Neither
// ever holds a secret: only variable names and durations.
type Warning struct {
	Name   string
	Detail string
}

// Warning names, the log lines' fixed messages.
const (
	// WarnShortGrace: the grace floor lets an old credential be revoked
	// soon after its rotation.
	WarnShortGrace = "short_grace"
	// WarnLongHold: a held revocation may last longer past its grace than
	// the grace ceiling.
	WarnLongHold = "long_hold"
	// WarnHoldForever: a held revocation is kept past its cap.
	WarnHoldForever = "hold_at_cap_hold"
)

// ShortGraceFloor is the grace floor under which Warnings warns: Heroku
// restarts an app's dynos over minutes (longer in Private Spaces), and an
// app runs the old credential until its dynos have restarted.
const ShortGraceFloor = 5 * time.Minute

// Warnings lists what in c may make revocations early or holds long.
func (c *Config) Warnings() []Warning {
	var out []Warning
	if d := c.shortGrace(); d != "" {
		out = append(out, Warning{Name: WarnShortGrace, Detail: d})
	}
	if c.HoldQuiet > 0 && c.HoldAtCap == HoldAtCapHold {
		out = append(out, Warning{Name: WarnHoldForever, Detail: "REKEY_HOLD_AT_CAP is hold: a revocation held " +
			"while its credential is in use is kept past its cap (REKEY_HOLD_MAX), for as long as the issuer " +
			"reports the credential used, until an operator releases it (rekey holds release)"})
	}
	if ceiling := c.GraceCeiling(); c.HoldQuiet > 0 && c.HoldMax > ceiling {
		out = append(out, Warning{Name: WarnLongHold, Detail: fmt.Sprintf(
			"REKEY_HOLD_MAX (%s) is longer than the grace ceiling (%s: REKEY_MAX_GRACE, or REKEY_GRACE or "+
				"REKEY_PRIVATE_SPACE_GRACE when longer): a held revocation may keep an old credential valid %s past "+
				"its grace; set REKEY_HOLD_MAX to at most %s", c.HoldMax, ceiling, c.HoldMax, ceiling)})
	}
	return out
}

// shortGrace says why the grace floor is short, or "" when it is not:
// REKEY_GRACE below REKEY_MIN_GRACE lowers the floor to itself (the
// documented contract of GraceFloor, which rekey dev and tests use), and
// a floor under ShortGraceFloor may revoke a credential an app still runs.
func (c *Config) shortGrace() string {
	floor := c.GraceFloor()
	var msg string
	switch {
	case c.Grace < c.MinGrace:
		msg = fmt.Sprintf("REKEY_GRACE (%s) is shorter than REKEY_MIN_GRACE (%s), so the grace floor is %s, not %s: "+
			"an old credential may be revoked %s after its rotation, by default and on request",
			c.Grace, c.MinGrace, floor, c.MinGrace, floor)
	case floor < ShortGraceFloor:
		msg = fmt.Sprintf("the grace floor is %s (REKEY_MIN_GRACE; REKEY_GRACE is %s): a rotation may ask for its "+
			"old credential to be revoked %s after it", floor, c.Grace, floor)
	default:
		return ""
	}
	if floor < ShortGraceFloor {
		msg += fmt.Sprintf("; Heroku takes minutes to restart an app's dynos, so a floor under %s may revoke "+
			"a credential an app still runs", ShortGraceFloor)
	}
	return msg
}
