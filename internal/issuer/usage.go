package issuer

import (
	"context"
	"errors"
	"time"
)

// Usage is what an issuer knows of a credential's recent use: evidence that
// a revocation should wait. It holds nothing secret.
type Usage struct {
	// LastUsedAt is the last time the credential authenticated; zero when
	// it never did or the issuer does not know.
	LastUsedAt time.Time
	// LastUsedBy is a short, non-secret hint of who used it, such as an
	// address or a client name; it may be empty.
	LastUsedBy string
}

// UsageReporter is implemented by issuers that can tell when a credential
// was last used. rekey asks before revoking; evidence of use may only
// lengthen a grace, never shorten it.
type UsageReporter interface {
	// Usage returns the credential's last use. It returns
	// ErrUsageUnsupported when the backend cannot tell, and then the
	// revocation goes ahead as if no issuer could report usage.
	Usage(ctx context.Context, instanceID, credentialID string) (Usage, error)
}

// ErrUsageUnsupported means the backend cannot report usage. It is not a
// failure.
var ErrUsageUnsupported = errors.New("issuer: usage not supported")
