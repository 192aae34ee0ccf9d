// Package seal encrypts secrets before they rest in Redis.
//
// A Sealer holds one or more AES-256-GCM keys, from REKEY_ENCRYPTION_KEYS.
// The first key seals; every key opens, so keys can be rotated: put the new
// key first, keep the old one until everything sealed under it has been
// resealed or has expired, then drop it.
//
// A sealed value is text: "v1." + key id + "." + base64url(nonce || ciphertext),
// or, from SealBinary, bytes: 0x01 + the key id's 4 bytes + nonce ||
// ciphertext, a quarter shorter, for a value that is a whole Redis string.
// The key id is the first 8 hex digits of SHA-256 of the key, so Open finds
// the key at once without trying each. The caller passes associated data
// (for example the Redis key and field the value is stored under), binding a
// sealed value to its place: a value copied elsewhere does not open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/rekeyhq/rekey/internal/secret"
)

// KeySize is the length of an encryption key in bytes.
const KeySize = 32

const prefix = "v1."

// binaryMark starts a value SealBinary made; no text value starts with it.
const binaryMark = "\x01"

// binaryIDLen is the length of the key id in a binary value: its 8 hex
// digits as bytes.
const binaryIDLen = 4

// ErrOpen is returned when a sealed value cannot be opened: it is malformed,
// sealed under a key the Sealer does not hold, or altered.
var ErrOpen = errors.New("seal: cannot open value")

// Sealer seals and opens values. It is safe for concurrent use.
type Sealer struct {
	ids   []string
	aeads map[string]cipher.AEAD
	// macKeys are derived from the keys, in order, for Fingerprints.
	macKeys [][]byte
}

// New returns a Sealer over keys, each KeySize bytes. keys[0] seals.
func New(keys ...[]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: no key")
	}
	s := &Sealer{aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("seal: key %d is %d bytes, want %d", i+1, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i+1, err)
		}
		id := keyID(k)
		s.ids = append(s.ids, id)
		s.aeads[id] = aead
		m := hmac.New(sha256.New, k)
		m.Write([]byte("rekey fingerprint key"))
		s.macKeys = append(s.macKeys, m.Sum(nil))
	}
	return s, nil
}

// Fingerprints are keyed hashes of data (HMAC-SHA256 under a key derived
// from each key, the first key's first): two equal values have the same
// fingerprint under one key, and without the key a fingerprint tells
// nothing of its value, however few values it could be. A value
// fingerprinted before the keys were rotated matches the fingerprint under
// its key, as long as that key is still held.
func (s *Sealer) Fingerprints(data []byte) [][]byte {
	out := make([][]byte, len(s.macKeys))
	for i, k := range s.macKeys {
		m := hmac.New(sha256.New, k)
		m.Write(data)
		out[i] = m.Sum(nil)
	}
	return out
}

// MACKeys returns copies of the keys Fingerprints uses, one per key, in
// order: a store keeps them, sealed, so that fingerprints taken under a
// key stay comparable after that key is retired.
func (s *Sealer) MACKeys() [][]byte {
	out := make([][]byte, len(s.macKeys))
	for i, k := range s.macKeys {
		out[i] = append([]byte(nil), k...)
	}
	return out
}

// ParseKeys decodes a comma-separated list of base64 keys, as
// REKEY_ENCRYPTION_KEYS carries them. Errors name the key by position only.
func ParseKeys(list string) ([][]byte, error) {
	var keys [][]byte
	for i, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(part)
		if err != nil {
			k, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(part, "="))
		}
		if err != nil {
			return nil, fmt.Errorf("key %d is not base64", i+1)
		}
		if _, herr := hex.DecodeString(part); herr == nil && len(part) == 2*KeySize {
			// `openssl rand -hex 32` is the habit of other tools' keys.
			return nil, fmt.Errorf("key %d is %d hex digits, which rekey reads as base64 (%d bytes, want %d): "+
				"make keys with openssl rand -base64 %d", i+1, len(part), len(k), KeySize, KeySize)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("key %d is %d bytes, want %d", i+1, len(k), KeySize)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key given")
	}
	return keys, nil
}

// Seal encrypts plain under the first key, bound to aad.
func (s *Sealer) Seal(plain secret.String, aad string) (string, error) {
	id := s.ids[0]
	aead := s.aeads[id]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain.Reveal())+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	out := aead.Seal(nonce, nonce, []byte(plain.Reveal()), []byte(aad))
	return prefix + id + "." + base64.RawURLEncoding.EncodeToString(out), nil
}

// SealBinary is Seal with the value as bytes rather than text (the
// package comment): for a value that is a whole Redis string, which holds
// bytes as they are, not a hash field or JSON.
func (s *Sealer) SealBinary(plain secret.String, aad string) (string, error) {
	id := s.ids[0]
	aead := s.aeads[id]
	rawID, _ := hex.DecodeString(id)
	out := make([]byte, 0, len(binaryMark)+binaryIDLen+aead.NonceSize()+len(plain.Reveal())+aead.Overhead())
	out = append(append(out, binaryMark...), rawID...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	out = append(out, nonce...)
	return string(aead.Seal(out, nonce, []byte(plain.Reveal()), []byte(aad))), nil
}

// split returns the key id a sealed value names and the rest, nonce ||
// ciphertext: as bytes in SealBinary's form, in base64url in Seal's (text
// true). ok is false when the value has neither form.
func split(sealed string) (id, body string, text, ok bool) {
	if rest, bin := strings.CutPrefix(sealed, binaryMark); bin {
		if len(rest) < binaryIDLen {
			return "", "", false, false
		}
		return hex.EncodeToString([]byte(rest[:binaryIDLen])), rest[binaryIDLen:], false, true
	}
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", "", false, false
	}
	id, body, ok = strings.Cut(rest, ".")
	return id, body, true, ok
}

// Open decrypts a value made by Seal or SealBinary with the same aad.
func (s *Sealer) Open(sealed, aad string) (secret.String, error) {
	id, body, text, ok := split(sealed)
	if !ok {
		return secret.String{}, ErrOpen
	}
	aead := s.aeads[id]
	if aead == nil {
		return secret.String{}, ErrUnknownKey
	}
	raw := []byte(body)
	if text {
		var err error
		if raw, err = base64.RawURLEncoding.DecodeString(body); err != nil {
			return secret.String{}, ErrOpen
		}
	}
	if len(raw) < aead.NonceSize() {
		return secret.String{}, ErrOpen
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(aad))
	if err != nil {
		return secret.String{}, ErrOpen
	}
	return secret.New(string(plain)), nil
}

// SealedByCurrent reports whether sealed was made with the sealing key, so
// callers can reseal values still under an older key.
func (s *Sealer) SealedByCurrent(sealed string) bool {
	id, _, _, ok := split(sealed)
	return ok && id == s.ids[0]
}

func keyID(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}
