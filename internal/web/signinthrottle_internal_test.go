package web

import (
	"fmt"
	"testing"
	"time"
)

// TestThrottleMemoryIsBounded plays an attacker rotating addresses, each
// failing often enough to be throttled: the throttle keeps at most
// maxThrottled clients, and one throttled among the first stays throttled
// while addresses failing once come and go.
func TestThrottleMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFailures(func() time.Time { return now })
	for i := range maxFailures {
		f.addOnce("198.51.100.9", uint64(i))
	}
	for i := range 3 * maxThrottled {
		f.addOnce(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), 0)
	}
	if n := f.size(); n > maxThrottled {
		t.Errorf("after %d addresses: the throttle keeps %d clients, want at most %d", 3*maxThrottled, n, maxThrottled)
	}
	if f.wait("198.51.100.9") <= 0 {
		t.Error("a throttled client was forgotten while one-failure addresses came and went")
	}
}
