package secret

import (
	"strings"
	"unicode"
)

// maxPlainRun is the longest run of ASCII letters and digits, a digit among
// them, that LooksGenerated lets pass: enough for "web.1", "ip-10-0-12-7",
// "us-east-1", "203.0.113.4" or a pod name's hashes, too short for a token.
const maxPlainRun = 12

// LooksGenerated reports whether s holds what a generated secret looks
// like: a run of more than maxPlainRun ASCII letters and digits with a
// digit in it ("sk_live_4eC39HqLyjWDarjtT1zd", a hex key). Text from
// outside that rekey keeps in clear (a usage hint) is dropped when it does;
// a value that does is taken for a secret when it turns up elsewhere.
func LooksGenerated(s string) bool {
	run, digit := 0, false
	for _, r := range s {
		if r <= unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			run, digit = run+1, digit || unicode.IsDigit(r)
		} else {
			run, digit = 0, false
		}
		if run > maxPlainRun && digit {
			return true
		}
	}
	return false
}

// Holds reports whether text holds one of known's values that
// LooksGenerated, or the password of a URL among them of 8 bytes or more:
// a secret, whatever else the value holds.
func Holds(text string, known ...String) bool {
	for _, k := range known {
		if LooksGenerated(k.v) && strings.Contains(text, k.v) {
			return true
		}
		if pw := urlPassword(k.v); len(pw) >= 8 && strings.Contains(text, pw) {
			return true
		}
	}
	return false
}
