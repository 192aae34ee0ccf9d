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
