package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// importedLines remembers which line of an import's file registered each
// instance, by its id without case, with a digest of what that line asked.
// A later line naming the instance again with other values (a stale row of
// a spreadsheet) would be a repeat registration, which leaves the current
// credential as the first line named it whatever the later one names, and
// one naming it in another case a second instance of one add-on: both are
// refused, naming the line that registered it. It is not safe for
// concurrent use.
type importedLines map[string]importedLine

type importedLine struct {
	line   int
	id     string
	digest [sha256.Size]byte
}

// conflict says why line n, asking in, contradicts the line of the file
// that registered its instance; "" when none does (a line repeating it
// exactly registers again, as any repeat registration).
func (s importedLines) conflict(n int, in registry.Input) string {
	first, ok := s[strings.ToLower(in.ID)]
	switch {
	case !ok || !store.ValidID(in.ID): // the registration refuses an id it does not take, with the reason
		return ""
	case first.id != in.ID:
		return fmt.Sprintf("instance id %s differs only in case from %s, which line %d registered: an add-on's id names "+
			"one instance, so line %d was not registered; check which spelling is right", in.ID, first.id, first.line, n)
	case first.digest != importDigest(in):
		return fmt.Sprintf("line %d registered instance %s with other values, and a file names each instance once: line %d "+
			"was not registered (it would have changed what line %d registered, but not its current credential); check "+
			"which line is right (rekey instances show %s shows what is registered)", first.line, in.ID, n, first.line, in.ID)
	}
	return ""
}

// add records that line n registered in.
func (s importedLines) add(n int, in registry.Input) {
	key := strings.ToLower(in.ID)
	if _, ok := s[key]; !ok {
		s[key] = importedLine{line: n, id: in.ID, digest: importDigest(in)}
	}
}

// importDigest is a digest of everything in asks, its secrets included
// (which its JSON redacts), so that two lines asking the same in other
// words (another key order) have one digest. Only the digest is kept.
func importDigest(in registry.Input) [sha256.Size]byte {
	h := sha256.New()
	b, _ := json.Marshal(in) // a struct of strings, bools, slices and maps: it cannot fail
	h.Write(b)
	write := func(s secret.String) { h.Write([]byte(strconv.Quote(s.Reveal()))) }
	if in.OAuthGrant != nil {
		write(in.OAuthGrant.Code)
	}
	if in.OAuth != nil {
		write(in.OAuth.RefreshToken)
		write(in.OAuth.AccessToken)
	}
	write(in.LogInputURL)
	for _, name := range slices.Sorted(maps.Keys(in.CurrentConfig)) {
		write(in.CurrentConfig[name])
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
