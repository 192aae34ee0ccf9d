// Package issuer holds rekey's credential backends: the services that mint,
// verify and revoke the credentials an add-on hands to its customers.
//
// HTTP calls the partner's own service through the signed webhook contract
// in DESIGN.md; Demo is an in-memory issuer for tests, `rekey dev` and demos,
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
	// ErrVerifyUnsupported when the backend cannot tell.
	Verify(ctx context.Context, instanceID, credentialID string) error
	// Revoke makes the credential stop working. Revoking a credential that
	// is already revoked or unknown succeeds.
	Revoke(ctx context.Context, instanceID, credentialID string) error
}

var (
	// ErrVerifyUnsupported means the backend cannot verify credentials; the
	// rotation goes on without that step. It is not a failure.
	ErrVerifyUnsupported = errors.New("issuer: verify not supported")
	// ErrInvalid means the caller passed an empty instance, rotation or
	// credential id. It is permanent.
	ErrInvalid = errors.New("issuer: invalid argument")
)

// Error is a failed issuer operation. It holds nothing secret.
type Error struct {
	Op      string // "mint", "verify" or "revoke"
	Status  int    // the issuer's HTTP status; 0 when none arrived
	Message string // the issuer's explanation, clipped
	Err     error  // the cause when no status arrived, such as a timeout
}

// Error names the operation, the status and the issuer's message or cause.
func (e *Error) Error() string {
	s := "issuer " + e.Op
	if e.Status != 0 {
		s += fmt.Sprintf(": status %d", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether retrying err cannot help: the issuer refused
// with a 4xx (for verify, 409, 410 and 422 mean the credential does not
// work), or the call was invalid. 408, 425 and 429 ask to come back later
// and are not permanent.
func IsPermanent(err error) bool {
	var e *Error
	switch {
	case err == nil, errors.Is(err, ErrVerifyUnsupported):
		return false
	case errors.Is(err, ErrInvalid):
		return true
	case errors.As(err, &e):
		return permanentStatus(e.Status)
	}
	return false
}

// IsTransient reports whether err is worth retrying later: 5xx, timeouts,
// connection errors and anything not known to be permanent.
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
