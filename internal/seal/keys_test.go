package seal_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
)

func TestKeyIDsNameKeysInOrder(t *testing.T) {
	t.Parallel()
	s, err := seal.New(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	ids := s.KeyIDs()
	if len(ids) != 2 || len(ids[0]) != 8 || ids[0] == ids[1] {
		t.Fatalf("KeyIDs = %v, want two distinct 8-digit ids", ids)
	}
	sealed, _ := s.Seal(secret.New("v"), "aad")
	id, ok := seal.KeyID(sealed)
	if !ok || id != ids[0] || s.KeyIndex(id) != 0 || s.KeyIndex(ids[1]) != 1 || s.KeyIndex("00000000") != -1 {
		t.Fatalf("KeyID(sealed) = %q, %v; KeyIndex = %d, %d", id, ok, s.KeyIndex(id), s.KeyIndex(ids[1]))
	}
}

func TestKeyIDRecognisesOnlySealedValues(t *testing.T) {
	t.Parallel()
	s, _ := seal.New(key(4))
	sealed, _ := s.Seal(secret.New(""), "aad")
	for _, v := range []string{"", "v1.2", "v1.deadbeef.AAAA", "v1.DEADBEEF." + strings.Repeat("A", 40),
		"v1.deadbeef." + strings.Repeat("A", 39) + "=", "v2.deadbeef." + strings.Repeat("A", 40), "postgres://u:p@h/x"} {
		if _, ok := seal.KeyID(v); ok {
			t.Errorf("KeyID(%q) says sealed", v)
		}
	}
	if _, ok := seal.KeyID(sealed); !ok {
		t.Errorf("KeyID(%q) says not sealed", sealed)
	}
}

func TestResealMovesValuesToTheFirstKey(t *testing.T) {
	t.Parallel()
	old, _ := seal.New(key(1))
	both, _ := seal.New(key(2), key(1))
	onlyNew, _ := seal.New(key(2))
	sealed, _ := old.Seal(secret.New("tok"), "place")

	out, changed, err := both.Reseal(sealed, "place")
	if err != nil || !changed || !both.SealedByCurrent(out) {
		t.Fatalf("Reseal = %q, %v, %v", out, changed, err)
	}
	if got, err := onlyNew.Open(out, "place"); err != nil || got.Reveal() != "tok" {
		t.Fatalf("the resealed value does not open under the new key alone: %v", err)
	}
	again, changed, err := both.Reseal(out, "place")
	if err != nil || changed || again != out {
		t.Fatalf("Reseal of a current value = %q, %v, %v; want it unchanged", again, changed, err)
	}
	if _, _, err := both.Reseal(sealed, "elsewhere"); !errors.Is(err, seal.ErrOpen) || errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("Reseal under another aad: %v, want ErrOpen only", err)
	}
	if _, _, err := onlyNew.Reseal(sealed, "place"); !errors.Is(err, seal.ErrUnknownKey) || !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("Reseal after the old key was dropped: %v, want ErrUnknownKey wrapping ErrOpen", err)
	}
}

// SealBinary's values open, refuse another place or an altered byte, name
// their key, reseal in their own form, and are a quarter shorter than text.
func TestSealBinary(t *testing.T) {
	t.Parallel()
	old, err := seal.New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	both, err := seal.New(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	plain := strings.Repeat("HRKU-token ", 8)
	sealed, err := old.SealBinary(secret.New(plain), "place-a")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := old.Seal(secret.New(plain), "place-a")
	if len(sealed) >= len(text)*4/5 || strings.Contains(sealed, "HRKU") {
		t.Errorf("binary value is %d bytes against %d as text, or shows its plaintext", len(sealed), len(text))
	}
	if got, err := both.Open(sealed, "place-a"); err != nil || got.Reveal() != plain {
		t.Fatalf("Open = %v, %v", got.Reveal() == plain, err)
	}
	altered := []byte(sealed)
	altered[len(altered)-1] ^= 1
	for name, v := range map[string][2]string{"other place": {sealed, "place-b"}, "altered": {string(altered), "place-a"},
		"short": {sealed[:10], "place-a"}, "mark only": {"\x01", "place-a"}} {
		if _, err := both.Open(v[0], v[1]); !errors.Is(err, seal.ErrOpen) {
			t.Errorf("%s: Open err = %v, want ErrOpen", name, err)
		}
	}
	if id, ok := seal.KeyID(sealed); !ok || id != old.KeyIDs()[0] {
		t.Errorf("KeyID = %q, %v; want %q", id, ok, old.KeyIDs()[0])
	}
	if _, ok := seal.KeyID(sealed[:20]); ok {
		t.Error("KeyID takes a truncated binary value for a sealed one")
	}
	if both.SealedByCurrent(sealed) || !old.SealedByCurrent(sealed) {
		t.Error("SealedByCurrent does not name the binary value's key")
	}
	out, changed, err := both.Reseal(sealed, "place-a")
	if err != nil || !changed || !strings.HasPrefix(out, "\x01") || !both.SealedByCurrent(out) {
		t.Fatalf("Reseal = %q, %v, %v; want a binary value under the first key", out, changed, err)
	}
	if got, err := both.Open(out, "place-a"); err != nil || got.Reveal() != plain {
		t.Fatalf("Open(resealed) = %v, %v", got.Reveal() == plain, err)
	}
}
