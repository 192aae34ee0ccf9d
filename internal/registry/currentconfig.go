package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rekeyhq/rekey/internal/store"
)

// checkCurrentConfig refuses a current_config that rekey could not take
// for the config of current_credential_id: one sent without that id, or
// whose id holds one of its secrets, or whose names are not exactly the
// instance's config_vars, or with a var left empty. Its error quotes no
// value and no name the partner sent beyond config_vars (a value sent
// where a name belongs would be quoted otherwise): only the config_vars
// missing, and how many names are extra.
func (in Input) checkCurrentConfig() error {
	if in.CurrentConfig == nil {
		return nil
	}
	if in.CurrentCredentialID == "" {
		return errors.New("current_config is the config of current_credential_id: send it with current_credential_id, or leave it out")
	}
	// An id that is the credential's secret (an API key named by itself)
	// would be written in the clear wherever ids go: Redis key names, the
	// history, logs, answers and the dashboard (I5).
	if store.IDHoldsSecret(in.CurrentCredentialID, in.CurrentConfig) {
		return errors.New("current_credential_id holds a secret of current_config: name the credential by an id of " +
			"its own, as the issuer's mint answers do, not by its key or password")
	}
	var missing []string
	for _, name := range in.ConfigVars {
		if _, ok := in.CurrentConfig[name]; !ok {
			missing = append(missing, name)
		}
	}
	extra := 0
	for name, v := range in.CurrentConfig {
		if !slices.Contains(in.ConfigVars, name) {
			extra++
		} else if v.IsZero() {
			return fmt.Errorf("current_config gives config var %s an empty value: send the value the app holds", name)
		}
	}
	switch {
	case len(missing) > 0:
		return fmt.Errorf("current_config must name exactly the config_vars; it lacks %s (and names %d var(s) config_vars does not)",
			strings.Join(missing, ", "), extra)
	case extra > 0:
		return fmt.Errorf("current_config must name exactly the config_vars; it names %d var(s) config_vars does not", extra)
	}
	return nil
}
