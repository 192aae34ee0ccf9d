package config

import (
	"fmt"
	"time"
)

// Holds is how a revocation waits for its credential to go quiet
// (docs/design.md, "Holds").
type Holds struct {
	// HoldQuiet is REKEY_HOLD_QUIET: at its revoke time, a credential the
	// issuer reports used within this period is held. Default 15m; 0 turns
	// holds off.
	HoldQuiet time.Duration
	// HoldRecheck is REKEY_HOLD_RECHECK, how long a held revocation waits
	// before asking the issuer again (plus up to a tenth of jitter).
	// Default 5m, at least 1s.
	HoldRecheck time.Duration
	// HoldMax is REKEY_HOLD_MAX, how long past the grace a hold may last.
	// Default 24h. Set, it may not exceed the grace ceiling or a week,
	// whichever is longer (checkHoldMax).
	HoldMax time.Duration
	// HoldAtCap is REKEY_HOLD_AT_CAP, what happens to a hold at its cap:
	// "revoke" (default) or "hold". Either is logged as an error and
	// audited.
	HoldAtCap string
}

// Hold actions at the cap.
const (
	HoldAtCapRevoke = "revoke"
	HoldAtCapHold   = "hold"
)

func (p *parser) holds() Holds {
	return Holds{
		HoldQuiet:   p.duration("REKEY_HOLD_QUIET", 15*time.Minute, 0),
		HoldRecheck: p.duration("REKEY_HOLD_RECHECK", 5*time.Minute, time.Second),
		HoldMax:     p.duration("REKEY_HOLD_MAX", 24*time.Hour, 0),
		HoldAtCap:   p.oneOf("REKEY_HOLD_AT_CAP", HoldAtCapRevoke, HoldAtCapRevoke, HoldAtCapHold),
	}
}

// checkHoldMax refuses a REKEY_HOLD_MAX set (raw, as read) longer than
// the grace ceiling and than a week (DefaultMaxGrace): REKEY_HOLD_MAX=8760h
// would let a held revocation keep an old credential valid for a year, as
// the ceiling keeps a typo in a grace from doing. A value between the
// ceiling and a week (REKEY_HOLD_MAX=24h with REKEY_MAX_GRACE=12h), and the
// default under a lower ceiling, were accepted before and still are:
// Warnings says so at start-up instead.
func (c *Config) checkHoldMax(raw string) error {
	if limit := max(c.GraceCeiling(), DefaultMaxGrace); raw != "" && c.HoldMax > limit {
		return fmt.Errorf("REKEY_HOLD_MAX must be at most %s (the grace ceiling: REKEY_MAX_GRACE, or REKEY_GRACE or "+
			"REKEY_PRIVATE_SPACE_GRACE when longer, and at least a week), got %q: a held revocation would keep an "+
			"old credential valid that long past its grace", limit, raw)
	}
	return nil
}
