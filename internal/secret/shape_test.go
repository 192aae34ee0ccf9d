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
		// A DSN's key is its user, with no password; an ingest URL's is a
		// query parameter; a user beside a password that looks generated
		// is still the credential's name.
		secret.New("https://9F8E7D6C5B4A39281726354ABCDEF012@ingest.example/42"),
		secret.New("https://ingest.example/v1?api_key=k3yk3yk3y-0001&region=eu1"),
		secret.New("mysql://cred8f3a9b2c1d4e5f:Pw-77aa-99bb@db.example/app"),
		secret.New("postgres://rk1a2b3c4d5e6f7a8b9c@db.example/app?sslmode=verify-full&sslkey=/etc/k"),
		secret.New("s3://b/?access_key_id=AKIAIOSFODNN7EXAMPLE&secret_access_key=wJalrXUtnFEMIK7MDENG"),
		secret.New("mongodb://u:pw-long-enough@h/app?authSource=tenant-db-primary"),
	}
	for text, want := range map[string]bool{
		"cred_1":                           false,
		"us-east-1-cred-7":                 false, // a value, but not a secret's shape
		"s3cretpass":                       true,  // a URL's password
		"id-tok_9f8e7d6c5b4a39281706":      true,  // a generated value
		"u_cred_1":                         false, // a URL's user is no secret
		"postgres://u_cred_1:s3cretpass@d": true,
		"9f8e7d6c5b4a39281726354abcdef012": true,  // a DSN's key, in another case
		"k3yk3yk3y-0001":                   true,  // a query's api_key
		"eu1":                              false, // a query parameter of no secret's name
		"cred8f3a9b2c1d4e5f":               false, // a URL's user beside a password
		"pw-77aa-99bb":                     true,  // its password, in another case
		// A database role logged in otherwise, a public key id, a source.
		"rk1a2b3c4d5e6f7a8b9c": false,
		"AKIAIOSFODNN7EXAMPLE": false,
		"tenant-db-primary":    false,
		"wJalrXUtnFEMIK7MDENG": true, // its secret_access_key
	} {
		if got := secret.Holds(text, known...); got != want {
			t.Errorf("Holds(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestKeyInGroups(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47": true,
		"k9Xq-2mPv-7LwR-4zTy-8NcB":             true,
		"us-east-1":                            false,
		"ip-10-0-12-7":                         false, // too short joined
		"db-1.example.com":                     false, // a host's dot
		"correct-horse-battery-staple":         false, // no digit: words
		"3f2a9c1e7b4d4e8a9c2f1a6b5d8e0f47":     false, // one run: LooksGenerated's
		"k9Xq--2mPv-7LwR-4zTy":                 false,
	} {
		if got := secret.KeyInGroups(s); got != want {
			t.Errorf("KeyInGroups(%q) = %v, want %v", s, got, want)
		}
	}
	if !secret.Holds("id-3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47", secret.New("3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47")) {
		t.Error("Holds misses a UUID key in an id")
	}
}
