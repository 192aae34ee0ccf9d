package printable_test

import (
	"encoding/json"
	"maps"
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
		{"inst\u200b-1 \u200c\u200d\u2060\u2063\ufeff\u00ad\u3164\u034f\U000E0041", `inst\u200b-1 \u200c\u200d\u2060\u2063\ufeff\u00ad\u3164\u034f\U000e0041`},
		{"\U0001F469\u200d\U0001F4BB \u26a0\ufe0f \U0001F511", `` + "\U0001F469" + `\u200d` + "\U0001F4BB \u26a0" + `\ufe0f` + " \U0001F511"},
	}
	for _, c := range cases {
		got := printable.Text(c.in)
		if got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, printable.Unsafe) || strings.ContainsFunc(got, printable.Invisible) {
			t.Errorf("Text(%q) = %q still holds what a terminal acts on or hides", c.in, got)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("a\x1b[31mb\u202ec\n\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := printable.Text(s)
		if !utf8.ValidString(got) || strings.ContainsFunc(got, printable.Unsafe) || strings.ContainsFunc(got, printable.Invisible) {
			t.Fatalf("Text(%q) = %q", s, got)
		}
	})
}

// JSON writes the runes encoding/json leaves raw and a terminal acts on
// (C1 controls, bidi formatting) as \u escapes, keeps other text as it is,
// and decodes back to the very same value.
func TestJSONEscapesWhatTheEncoderLeavesRaw(t *testing.T) {
	in := map[string]string{"reason": "caf\u00e9 \x7f \u009b31m \u202eRTL\u2066 \u2028 ok \U0001F511", "plain": "inst-1"}
	raw, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out := printable.JSON(raw)
	if i := strings.IndexFunc(string(out), func(r rune) bool { return r != '\n' && printable.Unsafe(r) }); i >= 0 {
		t.Errorf("JSON left %q raw:\n%s", []rune(string(out[i:]))[0], out)
	}
	for _, want := range []string{`\u009b31m`, `\u202eRTL\u2066`, "caf\u00e9", "\U0001F511", "\n  \"plain\""} {
		if !strings.Contains(string(out), want) {
			t.Errorf("JSON lacks %q:\n%s", want, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || !maps.Equal(back, in) {
		t.Errorf("JSON decodes to %q (%v), want %q", back, err, in)
	}
	if plain := []byte(`{"a":"b"}`); &printable.JSON(plain)[0] != &plain[0] {
		t.Error("JSON copied an encoding that needed no escape")
	}
}
