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
//
// A secret may also be echoed cut short ("refresh token 7c6b5a49…"), which
// no search for the whole value finds: every run of minEcho bytes or more
// that text shares with a URL's password, or with a value that is not a
// URL and holds a digit, as tokens and keys do, is removed too. Other
// values (a URL without a password, a config var name given as a value)
// are removed only whole: pieces of them are in ordinary text.
func Scrub(text string, known ...String) string {
	values := make([]string, 0, len(known)*2)
	pieces := make([]string, 0, len(known)*2)
	for _, k := range known {
		if k.v == "" {
			continue
		}
		values = append(values, k.v)
		if pw := urlPassword(k.v); pw != "" {
			values = append(values, pw, url.QueryEscape(pw))
			pieces = append(pieces, pw, url.QueryEscape(pw))
		} else if strings.ContainsAny(k.v, "0123456789") && !strings.Contains(k.v, "://") {
			pieces = append(pieces, k.v)
		}
	}
	slices.SortFunc(values, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, v := range values {
		text = strings.ReplaceAll(text, v, Redacted)
	}
	return scrubEchoes(text, pieces)
}

// minEcho is the shortest run of a secret's bytes that Scrub removes where
// it finds it alone: eight bytes of a generated token are already a good
// part of it, and shorter runs turn up in ordinary words.
const minEcho = 8

// scrubEchoes replaces every run of text that shares minEcho bytes or more
// with one of values by Redacted. A run is the union of the minEcho-byte
// windows of text found in a value, widened to whole runes.
func scrubEchoes(text string, values []string) string {
	windows := map[string]struct{}{}
	for _, v := range values {
		for at := 0; at+minEcho <= len(v); at++ {
			windows[v[at:at+minEcho]] = struct{}{}
		}
	}
	if len(windows) == 0 {
		return text
	}
	var b strings.Builder
	done, end := 0, -1 // text[:done] is written; a run being found ends at end
	flush := func(start int) {
		start = max(start, done)
		for start > done && !utf8.RuneStart(text[start]) {
			start--
		}
		for end < len(text) && !utf8.RuneStart(text[end]) {
			end++
		}
		b.WriteString(text[done:start])
		b.WriteString(Redacted)
		done = end
	}
	start := 0
	for at := 0; at+minEcho <= len(text); at++ {
		if _, ok := windows[text[at:at+minEcho]]; !ok {
			continue
		}
		if at > end {
			if end >= 0 {
				flush(start)
			}
			start = at
		}
		end = at + minEcho
	}
	if end < 0 {
		return text
	}
	flush(start)
	b.WriteString(text[done:])
	return b.String()
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
