package secret

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Scrub returns text with every known secret value replaced by Redacted.
// It is the one scrubber for text rekey did not write itself (an error
// body from Heroku or an issuer) before that text is kept or shown.
//
// Besides each value whole, it removes the password of a value that is a
// URL with one (postgres://user:pw@host/db), since a party that echoes a
// credential may echo only part of it. Longer values go first, so a
// value that contains another is removed whole. Empty values are ignored.
func Scrub(text string, known ...String) string {
	values := make([]string, 0, len(known)*2)
	for _, k := range known {
		if k.v == "" {
			continue
		}
		values = append(values, k.v)
		if pw := urlPassword(k.v); pw != "" {
			values = append(values, pw, url.QueryEscape(pw))
		}
	}
	slices.SortFunc(values, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, v := range values {
		text = strings.ReplaceAll(text, v, Redacted)
	}
	return text
}

// urlPassword returns the password of a URL value, or "".
func urlPassword(v string) string {
	if !strings.Contains(v, "://") {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

// Clip shortens s to at most n bytes, on a rune boundary, marking the cut
// with an ellipsis. It bounds how much outside text an error may keep.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// QuoteInput is how an error names a value that was refused where an id,
// a name or a setting belongs: quoted, cut to n bytes, when it reads as
// one; by its length only when it may be a secret sent in the wrong field
// (names and values swapped): one that looks generated, or holds ':', '@'
// or '/' as a URL or a "user:password" does.
func QuoteInput(s string, n int) string {
	if LooksGenerated(s) || strings.ContainsAny(s, ":@/") {
		return fmt.Sprintf("(a value of %d bytes, not quoted)", len(s))
	}
	return strconv.Quote(Clip(s, n))
}
