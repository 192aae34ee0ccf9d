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
// LooksGenerated or is a key written in groups (KeyInGroups), or a secret
// of a URL among them of 8 bytes or more (its
// password; the user of an http(s) URL when it has no password and looks
// generated, as a DSN's key is written; a query parameter whose name ends
// like a secret's, api_key= or access_token=), in any case: a secret,
// whatever else the value holds. A URL's user is otherwise no secret (a
// database role, logged in with a password given apart or a client
// certificate), nor is a parameter named like an id (access_key_id=):
// issuers name credentials by them.
func Holds(text string, known ...String) bool {
	lower := strings.ToLower(text)
	for _, k := range known {
		if (LooksGenerated(k.v) || KeyInGroups(k.v)) && strings.Contains(text, k.v) {
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

// KeyInGroups reports whether s is a generated key written in groups of
// ASCII letters and digits joined by dashes, as a UUID is
// ("3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47") and many services write their
// API keys ("k9Xq-2mPv-7LwR-4zTy-8NcB"): two groups or more that,
// joined, are a run LooksGenerated takes for a secret. No group of it need
// be one, so LooksGenerated lets the whole pass. A value holding anything
// else (a host's dots, a space) is not one: "ip-10-0-12-7" is too short,
// "db-1.example.com" has a dot.
func KeyInGroups(s string) bool {
	groups := strings.Split(s, "-")
	if len(groups) < 2 {
		return false
	}
	for _, g := range groups {
		if g == "" || strings.IndexFunc(g, func(r rune) bool {
			return r > unicode.MaxASCII || !unicode.IsLetter(r) && !unicode.IsDigit(r)
		}) >= 0 {
			return false
		}
	}
	return LooksGenerated(strings.Join(groups, ""))
}

// secretParams are how the name of a URL's query parameter that holds a
// secret ends, in lower case (api_key, access_token, sslpassword, sig);
// notSecretParams are such names that hold a file's path.
var (
	secretParams    = []string{"password", "passwd", "pwd", "secret", "token", "key", "sig", "signature"}
	notSecretParams = []string{"sslkey", "sslcert", "sslrootcert"}
)

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
		pw, ok := u.User.Password()
		web := strings.EqualFold(u.Scheme, "https") || strings.EqualFold(u.Scheme, "http")
		switch {
		case ok:
			out = append(out, pw)
		case web && LooksGenerated(u.User.Username()):
			out = append(out, u.User.Username())
		}
	}
	for name, vals := range u.Query() {
		name = strings.ToLower(name)
		if !slices.Contains(notSecretParams, name) &&
			slices.ContainsFunc(secretParams, func(p string) bool { return strings.HasSuffix(name, p) }) {
			out = append(out, vals...)
		}
	}
	return out
}
