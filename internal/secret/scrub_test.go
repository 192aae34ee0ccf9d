package secret_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rekeyhq/rekey/internal/secret"
)

func TestScrubRemovesValuesAndURLPasswords(t *testing.T) {
	t.Parallel()
	url := secret.New("postgres://u17:pw17-secret@db/x")
	token := secret.New("HRKU-abc")
	for _, tc := range []struct{ in, want string }{
		{"database unreachable while checking postgres://u17:pw17-secret@db/x", "database unreachable while checking [redacted]"},
		{"bad password pw17-secret for u17", "bad password [redacted] for u17"},
		{"query-escaped pw17-secret and token HRKU-abc", "query-escaped [redacted] and token [redacted]"},
		{"nothing known here", "nothing known here"},
	} {
		if got := secret.Scrub(tc.in, url, token, secret.String{}); got != tc.want {
			t.Errorf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	if got := secret.Clip(strings.Repeat("é", 10), 5); got != "éé…" {
		t.Errorf("Clip on a rune boundary = %q", got)
	}
	if got := secret.Clip("short", 10); got != "short" {
		t.Errorf("Clip of a short text = %q", got)
	}
}

func TestScrubRemovesValuesEchoedCutShort(t *testing.T) {
	t.Parallel()
	url := secret.New("postgres://u17:pw17-secret-0a1b@db.example/x")
	token := secret.New("7c6b5a49-3827-1605-aaaa-0123456789ab")
	accented := secret.New("clé-é-secrète-9a8b7c")
	keyed := secret.New("https://api.example/v1?key=0f1e2d3c4b5a")
	name := secret.New("MYADDON_API_KEY")
	for _, tc := range []struct{ in, want string }{
		{"refresh token 7c6b5a49-3827… has expired", "refresh token [redacted]… has expired"},
		{"tokens …5a49-3827-1605 and 89ab", "tokens …[redacted] and 89ab"},
		{"password pw17-secr… refused", "password [redacted]… refused"},
		// Its URL's other parts are not the secret: only the password is
		// looked for in pieces.
		{"postgres at db.example is down", "postgres at db.example is down"},
		{"two: 7c6b5a49 then pw17-secret-0a", "two: [redacted] then [redacted]"},
		{"cut inside a rune: é-secrète…", "cut inside a rune: [redacted]…"},
		{"seven 7c6b5a4 is too short", "seven 7c6b5a4 is too short"},
		{"Post \"https://api.example/v2\" refused", "Post \"https://api.example/v2\" refused"},
		{"extra \"MYADDON_API_URL\"", "extra \"MYADDON_API_URL\""},
	} {
		if got := secret.Scrub(tc.in, url, token, accented, keyed, name); got != tc.want {
			t.Errorf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzScrubLeavesNoPieceOfASecret: whatever the text and the secret, no
// run of 8 bytes of a secret that holds a digit is left in what the
// scrubbed text keeps of the text (between the Redacted marks), and text
// that was valid UTF-8 stays so when the secret is.
func FuzzScrubLeavesNoPieceOfASecret(f *testing.F) {
	f.Add("refresh token 7c6b5a49-3827… has expired", "7c6b5a49-3827-1605-aaaa-0123456789ab")
	f.Add("é-secrète…é-secr", "clé-é-secrète-9a8b7c")
	f.Add("aaaaaaaaaaaa1aaaaaaaa", "aaaaaaaa1")
	f.Fuzz(func(t *testing.T, text, value string) {
		if !strings.ContainsAny(value, "0123456789") || strings.Contains(value, "://") {
			return
		}
		got := secret.Scrub(text, secret.New(value))
		for _, kept := range strings.Split(got, secret.Redacted) {
			for at := 0; at+8 <= len(value); at++ {
				if piece := value[at : at+8]; strings.Contains(kept, piece) {
					t.Fatalf("Scrub(%q, %q) = %q keeps %q", text, value, got, piece)
				}
			}
		}
		if utf8.ValidString(text) && utf8.ValidString(value) && !utf8.ValidString(got) {
			t.Fatalf("Scrub(%q, %q) = %q, not UTF-8", text, value, got)
		}
	})
}
