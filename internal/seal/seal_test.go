package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, seal.KeySize) }

func TestSealOpenAndKeyRotation(t *testing.T) {
	t.Parallel()
	old, err := seal.New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := seal.New(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	plain := secret.New("postgres://u:p4ssw0rd@db/x")
	sealed, err := old.Seal(plain, "rekey:cred:a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "p4ssw0rd") {
		t.Fatalf("sealed value holds the plain text: %s", sealed)
	}
	got, err := rotated.Open(sealed, "rekey:cred:a")
	if err != nil || got.Reveal() != plain.Reveal() {
		t.Fatalf("Open with the old key second = %v, %v", got.Reveal(), err)
	}
	if rotated.SealedByCurrent(sealed) {
		t.Error("SealedByCurrent = true for a value sealed under the old key")
	}
	resealed, _ := rotated.Seal(plain, "x")
	if _, err := old.Open(resealed, "x"); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("a Sealer without the new key opened its value: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	s, _ := seal.New(key(3))
	sealed, _ := s.Seal(secret.New("v"), "place-a")
	tampered := sealed[:len(sealed)-2] + "AA"
	cases := map[string]struct{ value, aad string }{
		"other place":   {sealed, "place-b"},
		"tampered":      {tampered, "place-a"},
		"not sealed":    {"plain", "place-a"},
		"unknown key":   {"v1.deadbeef.AAAA", "place-a"},
		"short payload": {"v1." + strings.Split(sealed, ".")[1] + ".AA", "place-a"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Open(c.value, c.aad); !errors.Is(err, seal.ErrOpen) {
				t.Errorf("Open = %v, want ErrOpen", err)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString(key(4))
	cases := []struct {
		name, in string
		n        int
		wantErr  string
	}{
		{"one", good, 1, ""},
		{"two with spaces", good + " , " + good, 2, ""},
		{"empty", "", 0, "no key"},
		{"not base64", "!!!", 0, "key 1 is not base64"},
		{"short", base64.StdEncoding.EncodeToString([]byte("short")), 0, "key 1 is 5 bytes"},
		{"hex, as openssl rand -hex 32 makes it", good + "," + hex.EncodeToString(key(5)), 0,
			"key 2 is 64 hex digits, which rekey reads as base64 (48 bytes, want 32): make keys with openssl rand -base64 32"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, err := seal.ParseKeys(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || len(keys) != c.n {
				t.Fatalf("got %d keys, %v; want %d", len(keys), err, c.n)
			}
		})
	}
}
