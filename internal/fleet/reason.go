package fleet

import (
	"fmt"
	"strings"

	"github.com/rekeyhq/rekey/internal/store"
)

// CheckReason refuses a reason an operator gives (the HTTP API, the CLI)
// that rekey's own producers use to say who asked: the customer's
// dashboard tells the customer "you" asked for a rotation of reason
// store.ReasonCustomer, and a failed rotation of reason
// store.ReasonScheduled counts towards the instance's quarantine as the
// scheduler's. Compared as the dashboard and the store compare it, and
// also in another case or with spaces around, which an operator means
// alike.
func CheckReason(reason string) error {
	switch strings.ToLower(strings.TrimSpace(reason)) {
	case store.ReasonCustomer:
		return fmt.Errorf("reason %q is the one the customer's dashboard gives its rotations, and the customer would be told "+
			"they asked: give another, such as \"support ticket 1234\"", reason)
	case store.ReasonScheduled:
		return fmt.Errorf("reason %q is the one the rotation schedule gives its rotations, and a failure would count towards "+
			"quarantining the instance's schedule: give another, such as \"scheduled maintenance\"", reason)
	}
	return nil
}
