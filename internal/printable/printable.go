// Package printable makes outside text safe to show on a terminal.
//
// Text that rekey keeps but did not write (a rotation's or a batch's
// reason sent through the API or the tasks package, Heroku's and the
// issuer's error messages, an issuer's hint of who used a credential) may
// hold an escape sequence that recolours, clears or retitles an
// operator's terminal, a carriage return or a line break that forges a
// line of output, a bidi control that shows text in another order
// than it is stored, or a zero-width or other format character that shows
// as nothing, so that two values differ where they look the same or text
// is there that no one sees. Text escapes all of them, visibly, and is the one
// helper every place that shows such text calls: the CLI's human-readable
// output, and the Heroku client before it keeps a message. JSON output
// keeps the text exact for a script, and is as safe on a terminal (JSON).
package printable

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Unsafe reports whether r must not reach a terminal as it is: a C0 or C1
// control character (ESC, CR, LF and TAB among them) or DEL, a bidi
// formatting character (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066
// to U+2069), or the line and paragraph separators U+2028 and U+2029.
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}

// Invisible reports whether r shows as nothing, or only changes how the
// runes around it show: a format character (Unicode's Cf: zero-width
// space, non-joiner and joiner, word joiner, invisible operators, byte
// order mark, soft hyphen, tag characters, and the bidi controls), a
// variation selector, or another default ignorable code point (Hangul
// fillers, the combining grapheme joiner). Two ids or reasons that differ
// only by such runes look the same on screen, and a run of tag characters
// or variation selectors carries text no one sees.
func Invisible(r rune) bool {
	return r > unicode.MaxASCII && unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// Text returns s with every Unsafe or Invisible rune written as its Go
// escape ("\n", "\x1b", "\u202e", "\u200b") and every byte that is not
// UTF-8 as "\xNN", so that a terminal shows what was there instead of
// acting on it or showing nothing. Accents, other scripts and emoji stay
// as they are, but for the joiner and variation selector inside an emoji
// sequence, which are shown as escapes beside the emoji they join: a rule
// that kept them there would let a run of them hide text after any symbol.
// Text without any comes back unchanged; the result is always valid UTF-8.
func Text(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[s[i]>>4])
			b.WriteByte(hexDigits[s[i]&0xf])
		case escaped(r):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\n', '\u202e', '\U000e0072'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

const hexDigits = "0123456789abcdef"

// JSON returns the encoding of a JSON value, as encoding/json writes it,
// with every Unsafe or Invisible rune it left as it is (DEL, C1 controls,
// bidi formatting characters, zero-width and other format characters)
// written as JSON's \uXXXX escape instead, a surrogate pair past U+FFFF:
// the same text to whatever decodes it, nothing a terminal acts on or
// hides. encoding/json
// already escapes the C0 controls inside strings, and what is outside them
// is ASCII without DEL (the whitespace of an indented encoding among it),
// so only DEL and the runes past ASCII are looked at.
func JSON(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); {
		r, size := rune(b[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(b[i:])
		}
		if r == 0x7f || r >= utf8.RuneSelf && escaped(r) {
			out = append(out, b[last:i]...)
			if r > 0xffff {
				hi, lo := utf16.EncodeRune(r)
				out = appendU(appendU(out, hi), lo)
			} else {
				out = appendU(out, r)
			}
			last = i + size
		}
		i += size
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// appendU appends JSON's escape of the UTF-16 code unit r.
func appendU(out []byte, r rune) []byte {
	return append(out, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// escaped reports whether Text and JSON escape r.
func escaped(r rune) bool { return Unsafe(r) || Invisible(r) }

// needsEscape reports whether s holds a rune Text escapes or a byte that
// is not UTF-8.
func needsEscape(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, escaped)
}
