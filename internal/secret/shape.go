package secret

import (
	"net/url"
	"slices"
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
// LooksGenerated, or a secret of a URL among them of 8 bytes or more (its
// password; its user when it has no password and the user LooksGenerated,
// as a DSN's key is written; a query parameter named like a secret,
// api_key= or token=), in any case: a secret, whatever else the value
// holds. A URL's user beside a password is no secret: an issuer may name
// the credential by it.
func Holds(text string, known ...String) bool {
	lower := strings.ToLower(text)
	for _, k := range known {
		if LooksGenerated(k.v) && strings.Contains(text, k.v) {
			return true
		}
		for _, s := range urlSecrets(k.v) {
			if len(s) >= 8 && strings.Contains(lower, strings.ToLower(s)) {
				return true
			}
		}
	}
	return false
}

// secretParams are what the name of a URL's query parameter that holds a
// secret holds, in lower case (api_key, access_token, sslpassword, sig).
var secretParams = []string{"pass", "pwd", "secret", "token", "key", "auth", "sig"}

// urlSecrets returns the secrets of v when it is a URL (Holds).
func urlSecrets(v string) []string {
	if !strings.Contains(v, "://") {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return nil
	}
	var out []string
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw)
		} else if LooksGenerated(u.User.Username()) {
			out = append(out, u.User.Username())
		}
	}
	for name, vals := range u.Query() {
		name = strings.ToLower(name)
		if slices.ContainsFunc(secretParams, func(p string) bool { return strings.Contains(name, p) }) {
			out = append(out, vals...)
		}
	}
	return out
}
