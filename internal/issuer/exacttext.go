package issuer

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// readExactly reports whether encoding/json reads every string of the JSON
// text raw as the issuer wrote it. It does not for text that is not UTF-8
// or that escapes half of a UTF-16 surrogate pair alone (`\ud800`): both
// are read as U+FFFD, silently, so a config read from such text holds
// values the issuer never minted, and pushing them would give the apps a
// credential that does not work.
func readExactly(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped byte: `\\` and `\"` end here
		if i >= len(raw) || raw[i] != 'u' {
			continue
		}
		r, ok := hex4(raw[i+1:])
		if !ok {
			return false
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF: // a second half with no first
			return false
		case r >= 0xD800 && r <= 0xDBFF: // a first half: a second must follow
			if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(raw[i+3:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hex4 reads the four hex digits that start b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// usableVar reports whether a config var can be set on Heroku and reach
// the apps as written: a name with no NUL or '=' and a value with no NUL.
// A process's environment is NUL-terminated strings of NAME=value, so
// either would reach the dynos cut short or misnamed. Nor may the value be
// blank, nor a URL begin or end with white space, Unicode's included (a
// no-break space, a line separator) or an invisible format character (a
// byte-order mark, a zero-width space), nor hold a control character
// anywhere, C1's included (a trailing newline, a password from a base64
// encoder that wraps its lines, a tab): Go's url.Parse refuses an ASCII
// control character and a URL behind a byte-order mark, the others name a
// host, port or database that does not exist, and pushed, the apps would
// restart on a URL they cannot use and the credential that worked would
// be revoked. Other values may (a password with a space at its end, JSON
// ending with its newline, a key file of several lines that holds a URL).
func usableVar(name, value string) bool {
	if name == "" || strings.ContainsAny(name, "\x00=") || strings.Contains(value, "\x00") {
		return false
	}
	if strings.TrimSpace(value) == "" {
		return false
	}
	if !urlValue.MatchString(value) {
		return true
	}
	return strings.TrimFunc(value, urlEdge) == value && !strings.ContainsFunc(value, unicode.IsControl)
}

// urlValue matches a value that is a URL, white space or a format
// character (urlEdge) before its scheme aside: not one that only holds one
// (JSON of several lines with a token_uri, an INI file with a url line),
// whose lines are its own.
var urlValue = regexp.MustCompile(`^[\p{Z}\p{Cf}\t\r\n\v\f\x{85}]*[A-Za-z][A-Za-z0-9+.-]*://`)

// urlEdge reports whether r may not begin or end a URL value: white space
// (unicode.IsSpace) or an invisible format character (Unicode's Cf: a
// byte-order mark, a zero-width space, a direction mark).
func urlEdge(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) }
