package printable_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rekeyhq/rekey/internal/printable"
)

// Controls, bidi characters and bytes that are not UTF-8 are shown as
// escapes; other text, accents and scripts included, is left alone.
func TestText(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", ""},
		{"key leaked in incident 42", "key leaked in incident 42"},
		{"rotación — ключ 鍵", "rotación — ключ 鍵"},
		{"one\ntwo", `one\ntwo`},
		{"over\rwrite", `over\rwrite`},
		{"col\tumn", `col\tumn`},
		{"\x1b[2J\x1b]0;title\x07", `\x1b[2J\x1b]0;title\a`},
		{"del\x7f", `del\x7f`},
		{"c1 \u009b31m \u0085", `c1 \u009b31m \u0085`},
		{"\u202egnirts\u202c", `\u202egnirts\u202c`},
		{"\u2066iso\u2069 \u200e\u200f \u061c", `\u2066iso\u2069 \u200e\u200f \u061c`},
		{"line\u2028sep\u2029", `line\u2028sep\u2029`},
		{"bad \xff\x9b byte", `bad \xff\x9b byte`},
	}
	for _, c := range cases {
		got := printable.Text(c.in)
		if got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, printable.Unsafe) {
			t.Errorf("Text(%q) = %q still holds what a terminal acts on", c.in, got)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("a\x1b[31mb\u202ec\n\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := printable.Text(s)
		if !utf8.ValidString(got) || strings.ContainsFunc(got, printable.Unsafe) {
			t.Fatalf("Text(%q) = %q", s, got)
		}
	})
}
