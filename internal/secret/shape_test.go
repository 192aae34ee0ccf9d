package secret_test

import (
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
)

func TestLooksGenerated(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"":                                 false,
		"web.1":                            false,
		"203.0.113.4":                      false,
		"2001:db8::1":                      false,
		"ip-10-0-12-7.ec2.internal":        false,
		"web-5d8f7c9b4-x2k7q":              false,
		"productionworkerdyno":             false, // letters only: a word
		"sk_live_4eC39HqLyjWDarjtT1zdp7dc": true,
		"b181ef9dc5bb2d4202557cbac334bd10": true,
		"1234567890123":                    true,
		"abc123def456":                     false, // 12: the longest run let through
		"abc123def4567":                    true,
	} {
		if got := secret.LooksGenerated(s); got != want {
			t.Errorf("LooksGenerated(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestHolds(t *testing.T) {
	t.Parallel()
	known := []secret.String{
		secret.New("postgres://u_cred_1:s3cretpass@db.example:5432/app"),
		secret.New("us-east-1"),
		secret.New("tok_9f8e7d6c5b4a39281706"),
	}
	for text, want := range map[string]bool{
		"cred_1":                           false,
		"us-east-1-cred-7":                 false, // a value, but not a secret's shape
		"s3cretpass":                       true,  // a URL's password
		"id-tok_9f8e7d6c5b4a39281706":      true,  // a generated value
		"u_cred_1":                         false, // a URL's user is no secret
		"postgres://u_cred_1:s3cretpass@d": true,
	} {
		if got := secret.Holds(text, known...); got != want {
			t.Errorf("Holds(%q) = %v, want %v", text, got, want)
		}
	}
}
