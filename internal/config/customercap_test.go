package config_test

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// REKEY_CUSTOMER_ROTATIONS_PER_DAY=0 means no daily cap (README), the
// opposite of what an operator setting 0 to switch the dashboard's button
// off means: it is warned of at start-up, saying so and that 1 is the
// fewest, since no setting switches the button off.
func TestCustomerRotationsPerDayZeroIsWarnedOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		vars map[string]string
		want []string // phrases of the warning; none: no warning
	}{
		{map[string]string{"REKEY_CUSTOMER_ROTATIONS_PER_DAY": "0"}, []string{"REKEY_CUSTOMER_ROTATIONS_PER_DAY is 0, which means no daily cap",
			"no setting switches the button off", "1 is the fewest", "REKEY_CUSTOMER_ONE_PER_GRACE"}},
		{map[string]string{"REKEY_CUSTOMER_ROTATIONS_PER_DAY": "0", "REKEY_CUSTOMER_ONE_PER_GRACE": "false"},
			[]string{"any number of rotations a day", "no setting switches the button off"}},
		{map[string]string{"REKEY_CUSTOMER_ROTATIONS_PER_DAY": "1"}, nil},
		{nil, nil},
	}
	for _, c := range cases {
		got := warningsNamed(t, c.vars, config.WarnCustomerUncapped)
		if len(got) != min(len(c.want), 1) {
			t.Errorf("%v: customer_rotations_uncapped warnings %q, want %d", c.vars, got, min(len(c.want), 1))
			continue
		}
		for _, w := range got {
			for _, phrase := range c.want {
				if !strings.Contains(w.Detail, phrase) {
					t.Errorf("%v: %q lacks %q", c.vars, w.Detail, phrase)
				}
			}
		}
	}
}
