package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// settingPrefix starts the name of every setting of rekey's own.
const settingPrefix = "REKEY_"

// knownSettings are the REKEY_ names Load reads, found once by running it
// on an empty environment and recording what it asks for.
var knownSettings = sync.OnceValue(func() []string { return readNames(settingPrefix) })

// knownShared are the names outside REKEY_ that Load reads and that a
// person sets, REDIS_URL and HEROKU_*, for the warning about a misspelt
// one.
var knownShared = sync.OnceValue(func() []string {
	return slices.DeleteFunc(readNames(""), func(name string) bool {
		return name != "REDIS_URL" && !strings.HasPrefix(name, "HEROKU_")
	})
})

// readNames are the names starting with prefix that Load asks for.
func readNames(prefix string) []string {
	var names []string
	_, _ = Load(func(name string) (string, bool) {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
		return "", false
	})
	slices.Sort(names)
	return slices.Compact(names)
}

// herokuMetadata start the names of the variables Heroku sets on every
// dyno (dyno metadata, labs runtime-dyno-metadata): never a misspelling.
var herokuMetadata = []string{"HEROKU_APP_", "HEROKU_DYNO_", "HEROKU_RELEASE_", "HEROKU_SLUG_", "HEROKU_BUILD_"}

// Unknown returns a warning for each name in names (the environment's)
// that looks like a setting of rekey's but is not one it reads: a name
// starting with REKEY_ (in any case) that is not exactly a setting's,
// naming the setting it is closest to when one is within two typos, and a
// name within two typos of REDIS_URL, of a HEROKU_ variable rekey reads
// (HEROKU_API_ULR, redis_url) or of a REKEY_ setting (REKY_MAX_GRACE). Such a setting is otherwise ignored without
// a word: REKEY_GRACEE=2h leaves the grace at its default. Names of rekey's
// test harness (REKEY_TEST_) and Heroku's dyno metadata are left alone.
//
// A name holding invisible characters (a byte order mark, which a file
// saved on Windows starts with, ahead of its first line's name) is matched
// without them and quoted so that they show: it is as ignored as a typo,
// and more than two bytes away from the setting meant.
func Unknown(names []string) []string {
	known, shared := knownSettings(), knownShared()
	var out []string
	for _, name := range names {
		seen := visible(name)
		upper := strings.ToUpper(seen)
		if seen == name && (slices.Contains(known, name) || slices.Contains(shared, name)) ||
			strings.HasPrefix(upper, settingPrefix+"TEST_") || metadata(upper) {
			continue
		}
		var near string
		if !strings.HasPrefix(upper, settingPrefix) {
			// A REKEY_ setting with its prefix misspelt (REKY_MAX_GRACE)
			// is as ignored as one misspelt after it.
			if near = cmp.Or(Nearest(upper, shared), Nearest(upper, known)); near == "" {
				continue
			}
		} else {
			near = Nearest(upper, known)
		}
		out = append(out, unknownName(name, seen, near))
	}
	return out
}

// unknownName is Unknown's warning of name, which reads as seen once its
// invisible characters are dropped, naming near when it is not "".
func unknownName(name, seen, near string) string {
	if seen != name {
		msg := strconv.Quote(name) + " is not a setting rekey reads; it is ignored (its name holds invisible characters, " +
			"such as the byte order mark a file saved on Windows starts with"
		if near != "" {
			msg += ": did you mean " + near + "?"
		}
		return msg + ")"
	}
	msg := name + " is not a setting rekey reads; it is ignored"
	if near != "" {
		msg += didYouMean(name, near)
	}
	return msg
}

// visible is name without its invisible characters (Unicode's format
// characters: a byte order mark, a zero-width space or joiner).
func visible(name string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, name)
}

// IsSetting reports whether name is exactly a setting rekey reads; Unknown
// warns of a name that looks like one and is not.
func IsSetting(name string) bool {
	return slices.Contains(knownSettings(), name) || slices.Contains(knownShared(), name)
}

// didYouMean is the hint of a name that is near, saying when only its
// case differs: names of the environment are case-sensitive.
func didYouMean(name, near string) string {
	if strings.EqualFold(name, near) {
		return fmt.Sprintf(" (names are case-sensitive: did you mean %s?)", near)
	}
	return fmt.Sprintf(" (did you mean %s?)", near)
}

func metadata(upper string) bool {
	return slices.ContainsFunc(herokuMetadata, func(p string) bool { return strings.HasPrefix(upper, p) })
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
