package config

import "time"

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
	// Default 24h.
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
