package seal

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// ErrUnknownKey is returned by Open and Reseal when a value names a key id
// the Sealer does not hold: the key it was sealed under has been dropped
// from the configuration. It wraps ErrOpen. Its text names the variable, as
// it reaches the operator through a failed task's error.
var ErrUnknownKey = fmt.Errorf("%w: sealed under a key REKEY_ENCRYPTION_KEYS does not hold (see 'rekey keys status')", ErrOpen)

// minSealedLen is the shortest base64url text a real sealed value carries:
// a 12-byte nonce and a 16-byte tag, 28 bytes, are 38 characters.
const minSealedLen = 38

// minSealedBytes is minSealedLen in SealBinary's form: the nonce and the tag.
const minSealedBytes = 28

// KeyIDs returns the ids of the Sealer's keys in configuration order; the
// first seals. An id is the first 8 hex digits of SHA-256 of the key, so it
// names a key without revealing it.
func (s *Sealer) KeyIDs() []string { return append([]string(nil), s.ids...) }

// KeyIndex returns the position (0 first) of the key with id, or -1 when
// the Sealer does not hold it.
func (s *Sealer) KeyIndex(id string) int {
	for i, k := range s.ids {
		if k == id {
			return i
		}
	}
	return -1
}

// KeyID returns the id of the key a sealed value names, and whether v has
// the form Seal produces ("v1." + 8 hex digits + "." + base64url) or
// SealBinary's. It does not open v; a value that looks sealed may still
// fail to open.
func KeyID(v string) (string, bool) {
	if body, bin := strings.CutPrefix(v, binaryMark); bin {
		if len(body) < binaryIDLen+minSealedBytes {
			return "", false
		}
		return hex.EncodeToString([]byte(body[:binaryIDLen])), true
	}
	rest, ok := strings.CutPrefix(v, prefix)
	if !ok {
		return "", false
	}
	id, body, ok := strings.Cut(rest, ".")
	if !ok || len(id) != 8 || !isLowerHex(id) || len(body) < minSealedLen || !isBase64URL(body) {
		return "", false
	}
	return id, true
}

// Reseal opens a value sealed under any of the Sealer's keys and seals it
// again under the first key, bound to the same aad, in the same form
// (Seal's or SealBinary's). changed is false, and
// out equals sealed, when the value is already sealed under the first key
// (it is still opened, so a value that cannot be opened is always an
// error). The error wraps ErrOpen, or ErrUnknownKey for a dropped key.
func (s *Sealer) Reseal(sealed, aad string) (out string, changed bool, err error) {
	plain, err := s.Open(sealed, aad)
	if err != nil {
		return "", false, err
	}
	if s.SealedByCurrent(sealed) {
		return sealed, false, nil
	}
	if strings.HasPrefix(sealed, binaryMark) {
		out, err = s.SealBinary(plain, aad)
	} else {
		out, err = s.Seal(plain, aad)
	}
	if err != nil {
		return "", false, err
	}
	return out, true, nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isBase64URL(s string) bool {
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
