package issuer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// VerifyMode is what a 404 to POST /credentials/{id}/verify means
// (REKEY_ISSUER_VERIFY). The contract lets an issuer that does not
// support verify answer 404; but an issuer that minted a credential and
// lost it (never persisted it, answered from another replica) answers 404
// for that credential too, and taking that for "unsupported" would push a
// credential that does not work into every app of the instance.
type VerifyMode string

// Verify modes.
const (
	// VerifyAuto reads a 404 as "unsupported" only while the issuer has
	// never been seen answering verify itself; once it has (VerifyMemory),
	// a 404 means it does not know the credential it just minted.
	VerifyAuto VerifyMode = "auto"
	// VerifyRequired reads every 404 as "does not know the credential".
	VerifyRequired VerifyMode = "required"
	// VerifyOptional reads every 404 as "unsupported", as the contract
	// first had it.
	VerifyOptional VerifyMode = "optional"
)

// VerifyModes are the modes, the default (VerifyAuto) first.
var VerifyModes = []VerifyMode{VerifyAuto, VerifyRequired, VerifyOptional}

// VerifyMemoryTTL is how long the fact that the issuer answers verify
// lasts after the last answer that showed it: an issuer that dropped
// verify that long ago has its 404s read as "unsupported" again under
// VerifyAuto. A year, longer than any rotation period, so that a small
// fleet rotated every 90 days does not forget it between rotations.
const VerifyMemoryTTL = 365 * 24 * time.Hour

// verifyRecordEvery is how often one process at most writes the fact to
// its VerifyMemory: the fact changes once in the life of an issuer, and
// every Redis command counts in a rotation's cost.
const verifyRecordEvery = time.Hour

// CodeUnknownCredential names an UnknownCredentialError in failure codes
// ("verify:unknown_credential").
const CodeUnknownCredential = "unknown_credential"

// VerifyMemory keeps, for every process of a deployment, when the issuer
// last answered a verify request itself: a 2xx, or 409, 410 or 422 (the
// credential does not work). A 404, a 3xx, a 5xx or a timeout is no such
// answer, since a router or a proxy in front of the issuer sends those
// too. store.Store keeps it in Redis. Implementations must be safe for
// concurrent use.
type VerifyMemory interface {
	// IssuerVerifiedAt returns when the issuer last answered verify, as
	// recorded; the zero time when it never did or the record expired.
	IssuerVerifiedAt(ctx context.Context) (time.Time, error)
	// RecordIssuerVerified records at as the time of such an answer,
	// forgotten ttl later unless recorded again.
	RecordIssuerVerified(ctx context.Context, at time.Time, ttl time.Duration) error
}

// UnknownCredentialError is a 404 to verify read as "the issuer does not
// know the credential", not as "verify unsupported": under VerifyRequired
// always, under VerifyAuto once the issuer has answered verify before. It
// is permanent: the rotation ends before any push, and the credential is
// discarded and revoked. Like Error, it holds none of the issuer's text.
type UnknownCredentialError struct {
	Mode VerifyMode
	// LastVerified is when the issuer last answered a verify request
	// (VerifyAuto); zero under VerifyRequired.
	LastVerified time.Time
}

// Error says why the 404 was not read as "unsupported" and how to have it
// read so: it is the sentence an operator finds in the rotation's error.
func (e *UnknownCredentialError) Error() string {
	if e.Mode == VerifyRequired {
		return "issuer verify: status 404 for the credential it just minted; with REKEY_ISSUER_VERIFY=required " +
			"a 404 means the issuer does not know the credential; set REKEY_ISSUER_VERIFY=optional or auto " +
			"for an issuer that does not support verify"
	}
	return fmt.Sprintf("issuer verify: status 404 for the credential it just minted; the issuer has verified "+
		"credentials before (last at %s), so the 404 means it does not know this one; "+
		"REKEY_ISSUER_VERIFY=optional reads a 404 as unsupported, for an issuer that dropped verify",
		e.LastVerified.UTC().Format(time.RFC3339))
}

// WithVerify sets what a 404 to verify means (REKEY_ISSUER_VERIFY). Under
// VerifyAuto, mem is where the issuer's verify answers are remembered,
// shared by every process of the deployment; it is required then, and
// unused otherwise. Without WithVerify, a 404 to verify means unsupported
// (VerifyOptional).
func WithVerify(mode VerifyMode, mem VerifyMemory) Option {
	return func(h *HTTP) error {
		switch {
		case mode != VerifyAuto && mode != VerifyRequired && mode != VerifyOptional:
			return fmt.Errorf("verify mode %q is not auto, required or optional", mode)
		case mode == VerifyAuto && mem == nil:
			return errors.New("verify mode auto needs a memory of the issuer's verify answers")
		}
		h.verified.mode, h.verified.mem = mode, mem
		return nil
	}
}

// DefaultVerifyRechecks are the waits before Verify asks again about a
// credential a 404 says the issuer does not know: an issuer whose
// replicas lag a moment behind the one that minted answers 404 for a
// credential it does hold. Three seconds in all: a replica further behind
// than that fails the rotation, which then revokes the credential and can
// be asked for again (REKEY_ISSUER_VERIFY_RECHECKS sets longer waits).
var DefaultVerifyRechecks = []time.Duration{time.Second, 2 * time.Second}

// WithVerifyRechecks sets the waits before Verify asks again about a
// credential a 404 says the issuer does not know (UnknownCredentialError),
// one more request after each; none reads the first such 404 as final.
// Default: DefaultVerifyRechecks.
func WithVerifyRechecks(waits ...time.Duration) Option {
	return func(h *HTTP) error {
		for _, w := range waits {
			if w < 0 {
				return fmt.Errorf("verify recheck wait %s is negative", w)
			}
		}
		h.rechecks = slices.Clone(waits)
		return nil
	}
}

// verifyHistory is what one HTTP issuer knows of its issuer's verify
// answers under VerifyAuto, so that the common paths cost no Redis
// command: a 2xx writes the shared memory at most every verifyRecordEvery,
// and a 404 reads it only when this process has seen no answer within
// VerifyMemoryTTL. Its zero value is VerifyOptional. It is safe for
// concurrent use.
type verifyHistory struct {
	mode VerifyMode
	mem  VerifyMemory

	mu sync.Mutex
	// seen is the latest answer this process saw or read from mem.
	seen time.Time
	// recorded is when this process last wrote mem; zero when it has
	// not, or its last write failed.
	recorded time.Time
}

// answered notes that the issuer answered a verify request itself at now,
// and writes it to the memory when this process has not for
// verifyRecordEvery. A failed write is tried again at the next answer; it
// does not fail the verify, which worked.
func (v *verifyHistory) answered(ctx context.Context, now time.Time) {
	if v.mode != VerifyAuto {
		return
	}
	v.mu.Lock()
	v.seen = later(v.seen, now)
	due := v.recorded.IsZero() || !now.Before(v.recorded.Add(verifyRecordEvery))
	if due {
		v.recorded = now
	}
	v.mu.Unlock()
	if !due {
		return
	}
	if err := v.mem.RecordIssuerVerified(ctx, now, VerifyMemoryTTL); err != nil {
		v.mu.Lock()
		if v.recorded.Equal(now) {
			v.recorded = time.Time{}
		}
		v.mu.Unlock()
	}
}

// notFound reads a 404 to verify under the mode: ErrVerifyUnsupported, an
// *UnknownCredentialError, or, when the memory cannot be read, an error
// that is retried.
func (v *verifyHistory) notFound(ctx context.Context, now time.Time) error {
	switch v.mode {
	case VerifyRequired:
		return &UnknownCredentialError{Mode: VerifyRequired}
	case VerifyAuto:
	default:
		return ErrVerifyUnsupported
	}
	last, err := v.lastAnswer(ctx, now)
	switch {
	case err != nil:
		return fmt.Errorf("issuer verify: status 404, and whether the issuer has verified credentials before cannot be read: %w", err)
	case last.IsZero():
		return ErrVerifyUnsupported
	}
	return &UnknownCredentialError{Mode: VerifyAuto, LastVerified: last}
}

// lastAnswer is when the issuer last answered verify within
// VerifyMemoryTTL, zero when it did not: this process's own knowledge
// when it has some, else the memory's, which it then keeps.
func (v *verifyHistory) lastAnswer(ctx context.Context, now time.Time) (time.Time, error) {
	v.mu.Lock()
	seen := v.seen
	v.mu.Unlock()
	if recent(seen, now) {
		return seen, nil
	}
	at, err := v.mem.IssuerVerifiedAt(ctx)
	if err != nil || !recent(at, now) {
		return time.Time{}, err
	}
	v.mu.Lock()
	v.seen = later(v.seen, at)
	v.mu.Unlock()
	return at, nil
}

// recent reports whether an answer at t still counts at now.
func recent(t, now time.Time) bool { return !t.IsZero() && now.Sub(t) < VerifyMemoryTTL }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
