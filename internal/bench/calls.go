package bench

import (
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

// ConfigEndpoints are the calls that push a credential: one per rotation.
var ConfigEndpoints = []herokufake.Endpoint{herokufake.PatchConfig, herokufake.V1Put}

// BudgetEndpoints are the calls a rotation spends the budget on: its push;
// for a V1 instance the read-back that confirms it; the read of the config
// Heroku holds, before the first rotation of an instance registered without
// current_config, and after pushes Heroku did not answer (V3 GetConfig, V1
// V1Get).
var BudgetEndpoints = []herokufake.Endpoint{herokufake.PatchConfig, herokufake.V1Put, herokufake.V1Get, herokufake.GetConfig}

// ConfigCalls returns every config push the fake saw, in arrival order.
func ConfigCalls(f *herokufake.Fake) []herokufake.Call {
	return f.Calls(ConfigEndpoints...)
}

// Succeeded reports whether the fake accepted the call.
func Succeeded(c herokufake.Call) bool { return c.Status >= 200 && c.Status < 300 }

// FirstFor returns the first accepted config push for addonID.
func FirstFor(calls []herokufake.Call, addonID string) (herokufake.Call, bool) {
	for _, c := range calls {
		if c.Addon == addonID && Succeeded(c) {
			return c, true
		}
	}
	return herokufake.Call{}, false
}

// Span is the first and last arrival of the accepted calls for which keep
// is true.
func Span(calls []herokufake.Call, keep func(herokufake.Call) bool) (first, last time.Time) {
	for _, c := range calls {
		if !Succeeded(c) || !keep(c) {
			continue
		}
		if first.IsZero() || c.At.Before(first) {
			first = c.At
		}
		if c.At.After(last) {
			last = c.At
		}
	}
	return first, last
}

// CountAfter counts the accepted calls for which keep is true that arrived
// after t.
func CountAfter(calls []herokufake.Call, t time.Time, keep func(herokufake.Call) bool) int {
	n := 0
	for _, c := range calls {
		if Succeeded(c) && keep(c) && c.At.After(t) {
			n++
		}
	}
	return n
}

// InSet returns a filter keeping calls for the given add-on ids.
func InSet(ids []string) func(herokufake.Call) bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return func(c herokufake.Call) bool { return set[c.Addon] }
}

// Budget is the most calls a GCRA budget of perSecond calls a second and a
// burst of burst calls lets through in any window of length w.
func Budget(perSecond float64, burst int, w time.Duration) float64 {
	return perSecond*w.Seconds() + float64(burst)
}
