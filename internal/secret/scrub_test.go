package secret_test

import (
	"strings"
	"testing"

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
