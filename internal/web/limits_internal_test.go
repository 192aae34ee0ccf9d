package web

import (
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// Once the previous credential's revoke time has passed but its revocation
// still waits (held while it is in use, or retried), the customer is not
// told to wait until a time already gone.
func TestGraceSentenceNeverNamesATimePast(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	soon := refusalSentence(&store.Refusal{Reason: store.RefusedCustomerGrace, Until: now.Add(90 * time.Minute)}, store.CustomerLimits{}, now)
	if !strings.Contains(soon, "after 19:30:00 UTC") {
		t.Errorf("grace running: %q; want the revoke time", soon)
	}
	past := refusalSentence(&store.Refusal{Reason: store.RefusedCustomerGrace, Until: now.Add(-time.Minute)}, store.CustomerLimits{}, now)
	if strings.Contains(past, "17:59") || !strings.Contains(past, "once the previous credential is revoked") {
		t.Errorf("revoke time past: %q; want no time, and why it waits", past)
	}
}
