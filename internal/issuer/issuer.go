// Package issuer holds rekey's credential backends: the services that mint,
// verify and revoke the credentials an add-on hands to its customers.
//
// HTTP calls the partner's own service through the signed webhook contract
// in README.md; Demo is an in-memory issuer for tests, `rekey dev` and demos,
// and NewDemoServer serves the webhook contract from a Demo. The package
// knows nothing of Heroku: a Credential is an id and the config vars that
// carry it.
package issuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Credential is one credential minted for an add-on instance. Config maps
// each config var name, as the add-on manifest declares it, to its value.
type Credential struct {
	ID     string
	Config map[string]secret.String
}

// Issuer mints, verifies and revokes credentials. Implementations must be
// safe for concurrent use.
type Issuer interface {
	// Mint returns the credential for rotationID, creating it on the first
	// call: every later call with the same rotation returns the same one.
	Mint(ctx context.Context, instanceID, rotationID string) (Credential, error)
	// Verify checks that the credential works. It returns
	// ErrVerifyUnsupported when the backend cannot tell. The webhook
	// issuer returns an *UnknownCredentialError instead when its mode
	// reads the issuer's 404 as a credential it does not know (WithVerify).
	Verify(ctx context.Context, instanceID, credentialID string) error
	// Revoke makes the credential stop working. Revoking a credential that
	// is already revoked or unknown succeeds.
	Revoke(ctx context.Context, instanceID, credentialID string) error
}

// The operations of an issuer, as Error.Op and metrics name them.
const (
	OpMint   = "mint"
	OpVerify = "verify"
	OpRevoke = "revoke"
	OpUsage  = "usage"
)

// Ops returns every operation, in the order above.
func Ops() []string { return []string{OpMint, OpVerify, OpRevoke, OpUsage} }

var (
	// ErrVerifyUnsupported means the backend cannot verify credentials; the
	// rotation goes on without that step. It is not a failure.
	ErrVerifyUnsupported = errors.New("issuer: verify not supported")
	// ErrInvalid means the caller passed an empty instance, rotation or
	// credential id. It is permanent.
	ErrInvalid = errors.New("issuer: invalid argument")
)

// Error is a failed issuer operation. It holds no text of the issuer's or
// of the network: an issuer's answer may echo anything, a live credential
// included, and an Error travels to logs, audit events, asynq's last error
// and the customer's dashboard. Only the operation, the status and a failure
// code are kept.
type Error struct {
	Op     string // "mint", "verify" or "revoke"
	Status int    // the issuer's HTTP status; 0 when none arrived
	// Code names the failure in snake_case: the issuer's own code when its
	// answer carried one that passes ValidCode, otherwise one of rekey's
	// (StatusCode for a status, the Code constants for the rest).
	Code string
}

// Error names the operation, the status and the code, such as
// "issuer mint: status 503 (service_unavailable)" or "issuer revoke: timeout".
func (e *Error) Error() string {
	s := "issuer " + e.Op
	switch {
	case e.Status != 0 && e.Code != "":
		s += fmt.Sprintf(": status %d (%s)", e.Status, e.Code)
	case e.Status != 0:
		s += fmt.Sprintf(": status %d", e.Status)
	case e.Code != "":
		s += ": " + e.Code
	}
	return s
}

// Is lets errors.Is see a cancelled or timed-out call as context.Canceled or
// context.DeadlineExceeded, without the Error keeping the cause's text.
func (e *Error) Is(target error) bool {
	switch target {
	case context.Canceled:
		return e.Code == CodeCanceled
	case context.DeadlineExceeded:
		return e.Code == CodeTimeout
	}
	return false
}

// UnusableCredentialError is a mint answer that names a credential but
// whose config rekey cannot use (missing, empty, not a map of strings, or
// in an answer too large to read or broken off before its end). The
// issuer minted CredentialID: it must be revoked, never left working with
// nobody knowing of it. Its text, Err's, never holds the id: the caller
// decides whether the id itself is one rekey can record, which it cannot
// if the id holds a secret of Config.
type UnusableCredentialError struct {
	CredentialID string
	// Config is the string values of the answer's config, as far as they
	// could be read: what the id must not hold.
	Config []secret.String
	// ConfigUnchecked says Config is not all of the config's strings
	// (past mintedID's bounds, or an answer broken off within its config):
	// the id cannot be checked against them.
	ConfigUnchecked bool
	// BrokenOff says the answer's reading failed before its end (the
	// connection broke, or the answer never ended within the client's
	// timeout), where one too large was read to its end: a passing fault
	// of the network, not the issuer's answer. The mint, keyed by its
	// rotation, answers the same credential again (I6), whole if the
	// fault has passed.
	BrokenOff bool
	Err       *Error
}

func (e *UnusableCredentialError) Error() string {
	if e.Err == nil {
		return "issuer mint: " + CodeMalformed
	}
	return e.Err.Error()
}

func (e *UnusableCredentialError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}

// Code is why the answer cannot be used: CodeMalformed (no usable
// config) or CodeUnreadable (too large, or broken off).
func (e *UnusableCredentialError) Code() string {
	if e.Err == nil {
		return CodeMalformed
	}
	return e.Err.Code
}

// GoString keeps the id out of %#v too, as Error keeps it out of %v.
func (e *UnusableCredentialError) GoString() string { return fmt.Sprintf("%#v", e.Err) }

// IsPermanent reports whether retrying err cannot help: the issuer refused
// with a 4xx (for verify, 409, 410 and 422 mean the credential does not
// work, and a 404 may mean the issuer does not know it:
// UnknownCredentialError), or the call was invalid. 408, 425 and 429 ask
// to come back later and are not permanent.
func IsPermanent(err error) bool {
	var e *Error
	var unknown *UnknownCredentialError
	switch {
	case err == nil, errors.Is(err, ErrVerifyUnsupported):
		return false
	case errors.Is(err, ErrInvalid), errors.As(err, &unknown):
		return true
	// An answer rekey could not read says nothing of what the issuer
	// meant, whatever its status: try again.
	case errors.As(err, &e) && e.Code == CodeUnreadable:
		return false
	// A 404 page on DELETE came from whatever stands in front of the issuer
	// (a router, a framework's unrouted path), which may be fixed.
	case errors.As(err, &e) && e.Code == CodeNotFoundPage:
		return false
	// So did a page answered to DELETE or to a verify, 2xx or 4xx.
	case errors.As(err, &e) && e.Code == CodePageAnswer:
		return false
	// So did a 404 to DELETE of a credential the issuer's verify says
	// still works.
	case errors.As(err, &e) && e.Code == CodeStillWorks:
		return false
	case errors.As(err, &e):
		return permanentStatus(e.Status)
	}
	return false
}

// RefusesRekey reports whether err is the issuer's 401: it did not take
// rekey's signature (another REKEY_ISSUER_SECRET, a clock outside its
// window), which says nothing of the credential the call named.
func RefusesRekey(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized
}

// IsTransient reports whether err is worth retrying later: 5xx, 3xx (rekey
// never follows a redirect), timeouts, connection errors and anything not
// known to be permanent.
func IsTransient(err error) bool {
	return err != nil && !IsPermanent(err) && !errors.Is(err, ErrVerifyUnsupported)
}

func permanentStatus(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return status >= 400 && status <= 499
}
