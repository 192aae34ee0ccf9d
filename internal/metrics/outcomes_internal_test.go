package metrics

import (
	"slices"
	"testing"

	"github.com/rekeyhq/rekey/handlers"
)

// The outcomes the Collector exports at 0 from the start are the
// handlers' own: the lists are written twice (no internal package imports
// handlers), and held equal here.
func TestKnownOutcomesAreTheHandlers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		own, their []string
	}{
		{"rotation", rotationOutcomes, handlers.Outcomes()},
		{"revocation", revocationOutcomes, handlers.RevocationOutcomes()},
	} {
		if own, their := slices.Sorted(slices.Values(tc.own)), slices.Sorted(slices.Values(tc.their)); !slices.Equal(own, their) {
			t.Errorf("%s outcomes exported at 0: %q; the handlers have %q", tc.name, own, their)
		}
	}
}
