package handlers

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/rekeyhq/rekey/internal/secret"
)

// ConfigMismatchError is a minted credential whose config var names are not
// exactly the instance's registered config_vars. Pushing it would leave the
// app with a var the next revocation breaks (one missing) or one the
// add-on's manifest does not declare (one extra), so the rotation ends
// before any push. Names are not secret; values never appear.
type ConfigMismatchError struct {
	Missing []string // registered, but not in the credential
	Extra   []string // in the credential, but not registered
}

func (e *ConfigMismatchError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "missing "+strings.Join(e.Missing, ", "))
	}
	if len(e.Extra) > 0 {
		parts = append(parts, "extra "+strings.Join(e.Extra, ", "))
	}
	return "issuer's credential does not name the registered config vars: " + strings.Join(parts, "; ")
}

// checkConfigNames returns a *ConfigMismatchError unless config names
// exactly the registered vars.
func checkConfigNames(config map[string]secret.String, registered []string) error {
	var e ConfigMismatchError
	for _, name := range registered {
		if _, ok := config[name]; !ok {
			e.Missing = append(e.Missing, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(config)) {
		if !slices.Contains(registered, name) {
			e.Extra = append(e.Extra, clipName(name))
		}
	}
	if len(e.Missing) == 0 && len(e.Extra) == 0 {
		return nil
	}
	slices.Sort(e.Missing)
	return &e
}

// configVarName is what a config var name looks like (Heroku's own rule is
// looser, but add-on manifests use these): an issuer's name of that shape is
// quoted in errors.
var configVarName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// maxNamePart is the longest run of letters and digits, between
// underscores, that a quoted name may hold: "POSTGRESQL" and
// "ELASTICSEARCH" pass, a base32 secret of 16 letters (a TOTP seed) does
// not, digits or none.
const maxNamePart = 15

// clipName is how an extra name an issuer made up appears in errors: quoted
// when it reads as a config var name, else only its length. An issuer that
// swapped names and values, or wrote "NAME=value" as a name, has put a
// secret there, and errors reach logs, events and the dashboard (I5): an
// upper-case one (a base32 or TOTP seed, an AWS key id, upper-case hex) has
// a config var name's shape, so a name that looks generated, or holds a
// part longer than any config var name's, is not quoted either.
func clipName(name string) string {
	if configVarName.MatchString(name) && !secret.LooksGenerated(name) && !hasLongPart(name) {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("a name of %d bytes that is no config var name", len(name))
}

// hasLongPart reports whether name holds a run of more than maxNamePart
// bytes between underscores.
func hasLongPart(name string) bool {
	for part := range strings.SplitSeq(name, "_") {
		if len(part) > maxNamePart {
			return true
		}
	}
	return false
}
