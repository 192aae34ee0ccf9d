package web

import (
	"context"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// holdView is a revocation held because its credential is still in use
// (docs/design.md, "Holds"): the API's instance state and the dashboard
// show it, with the sentence the customer also reads in the app's logs.
type holdView struct {
	CredentialID string    `json:"credential_id"`
	RevokeAt     time.Time `json:"revoke_at"`
	HeldAt       time.Time `json:"held_at"`
	CapAt        time.Time `json:"cap_at"`
	LastUsedAt   time.Time `json:"last_used_at"`
	LastUsedBy   string    `json:"last_used_by,omitempty"`
	NextCheckAt  time.Time `json:"next_check_at"`
	Checks       int       `json:"checks"`
	Capped       bool      `json:"capped,omitempty"`
	Sentence     string    `json:"sentence"`
}

// loadHolds reads the holds of an instance's old credentials.
func (s *server) loadHolds(ctx context.Context, v instanceView) ([]holdView, error) {
	holds, err := s.Store.InstanceHolds(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	out := make([]holdView, 0, len(holds))
	for _, h := range holds {
		out = append(out, holdView{CredentialID: h.CredentialID, RevokeAt: h.RevokeAt, HeldAt: h.HeldAt,
			CapAt: h.CapAt, LastUsedAt: h.LastUsedAt, LastUsedBy: h.LastUsedBy, NextCheckAt: h.NextCheckAt,
			Checks: h.Checks, Capped: h.Capped, Sentence: capitalize(h.Sentence(v.ConfigVars, s.Now())) + "."})
	}
	return out, nil
}

// capitalize upper-cases the first letter of a sentence.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// holdEventText describes the hold events in fixed words, and anything
// else as a step of rekey's work.
func holdEventText(e store.Event) string {
	switch e.Type {
	case store.EventRevocationHeld:
		return "Old credential still in use, so its revocation waits: it " + e.Detail + credential(e)
	case store.EventHoldRechecked:
		return "Old credential checked again: it " + e.Detail + credential(e)
	case store.EventHoldReleased:
		if strings.HasPrefix(e.Detail, "released by ") {
			// Who released it, in the operators' words, is theirs.
			return "Old credential no longer held: released by the add-on's operators" + credential(e)
		}
		return "Old credential no longer held: " + e.Detail + credential(e)
	case store.EventHoldCapped:
		return "Old credential reached the longest hold: " + e.Detail + credential(e)
	}
	return "rekey recorded a step of its work"
}
