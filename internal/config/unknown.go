package config

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// settingPrefix starts the name of every setting of rekey's own.
const settingPrefix = "REKEY_"

// knownSettings are the REKEY_ names Load reads, found once by running it
// on an empty environment and recording what it asks for.
var knownSettings = sync.OnceValue(func() []string {
	var names []string
	_, _ = Load(func(name string) (string, bool) {
		if strings.HasPrefix(name, settingPrefix) {
			names = append(names, name)
		}
		return "", false
	})
	slices.Sort(names)
	return slices.Compact(names)
})

// Unknown returns a warning for each name in names (the environment's)
// that starts with REKEY_ but that rekey does not read, naming the
// setting it is closest to when one is within two typos. Such a setting is
// otherwise ignored without a word: REKEY_GRACEE=2h leaves the grace at its
// default. Names of rekey's test harness (REKEY_TEST_) are left alone.
func Unknown(names []string) []string {
	known := knownSettings()
	var out []string
	for _, name := range names {
		if !strings.HasPrefix(name, settingPrefix) || strings.HasPrefix(name, settingPrefix+"TEST_") ||
			slices.Contains(known, name) {
			continue
		}
		msg := name + " is not a setting rekey reads; it is ignored"
		if near := Nearest(name, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		out = append(out, msg)
	}
	return out
}

// Nearest returns the name of known within two edits of name, the closest
// first, or "": the "did you mean" of a misspelt setting (and of a
// misspelt command-line flag).
func Nearest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
