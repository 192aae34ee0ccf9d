package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
)

// fingerprintKeyKey is a STRING: the key of the keyed fingerprints that
// credentials keep of their configs (configFingerprints), 32 random bytes
// sealed like every other secret rekey stores. It outlives the encryption
// keys: `rekey keys reseal` moves it to a new first key like any sealed
// value, so dropping an old key of REKEY_ENCRYPTION_KEYS after the reseal
// leaves every fingerprint comparable. The first process that needs it
// creates it.
func fingerprintKeyKey() string { return keyPrefix + "fingerprint_key" }

// fingerprintKeySize is the fingerprint key's length in bytes.
const fingerprintKeySize = 32

// configFingerprintLen is how many bytes of a config's fingerprint a
// credential keeps: a false match, which would fail one rotation, comes
// once in 2^64 comparisons.
const configFingerprintLen = 8

// configFingerprints are the keyed fingerprints of a credential's config,
// its vars in name order, each name and value after its length, as bytes,
// configFingerprintLen bytes each. fp, under the fingerprint key
// (fingerprintKeyKey), is what a credential keeps (field "f") and the
// instance's minted set remembers, so that a later mint answering with the
// same config under another id is refused before anything is pushed. all
// is fp followed by the fingerprints under each encryption key held
// (seal.Sealer.Fingerprints), which is what versions before the
// fingerprint key kept: a stored fingerprint is compared with all of
// them. When the fingerprint key cannot be read (Redis failed, or no key
// of REKEY_ENCRYPTION_KEYS opens it: 'rekey keys status' counts it), fp
// falls back to the first encryption key's fingerprint, as before it.
func (s *Store) configFingerprints(ctx context.Context, config map[string]secret.String) (fp, all string) {
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(config)) {
		v := config[name].Reveal()
		b = append(binary.AppendUvarint(b, uint64(len(name))), name...)
		b = append(binary.AppendUvarint(b, uint64(len(v))), v...)
	}
	var out []byte
	if k, err := s.fingerprintKey(ctx); err == nil {
		m := hmac.New(sha256.New, k)
		m.Write(b)
		out = m.Sum(nil)[:configFingerprintLen]
	}
	for _, f := range s.sealer.Fingerprints(b) {
		out = append(out, f[:configFingerprintLen]...)
	}
	return string(out[:configFingerprintLen]), string(out)
}

// fingerprintKey returns the fingerprint key, reading it once per Store
// and creating it when Redis holds none.
func (s *Store) fingerprintKey(ctx context.Context) ([]byte, error) {
	s.fpMu.Lock()
	defer s.fpMu.Unlock()
	if s.fpKey != nil {
		return s.fpKey, nil
	}
	k := fingerprintKeyKey()
	v, err := s.rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		v, err = s.createFingerprintKey(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("read the fingerprint key: %w", err)
	}
	plain, err := s.sealer.Open(v, k+"#")
	if err != nil || len(plain.Reveal()) != fingerprintKeySize {
		return nil, fmt.Errorf("the fingerprint key: %w", ErrUnreadable)
	}
	s.fpKey = []byte(plain.Reveal())
	return s.fpKey, nil
}

// createFingerprintKey stores a new fingerprint key unless another process
// stored one first, and returns the one stored.
func (s *Store) createFingerprintKey(ctx context.Context) (string, error) {
	raw := make([]byte, fingerprintKeySize)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	k := fingerprintKeyKey()
	sealed, err := s.sealer.SealBinary(secret.New(string(raw)), k+"#")
	if err != nil {
		return "", err
	}
	if err := s.rdb.SetNX(ctx, k, sealed, 0).Err(); err != nil {
		return "", err
	}
	return s.rdb.Get(ctx, k).Result()
}
