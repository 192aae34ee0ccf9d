package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
	"unicode"

	"github.com/rekeyhq/rekey/internal/secret"
)

// ActionUsage is the action named in a usage request's body.
const ActionUsage = "usage"

// maxUsedByLen bounds the hint of who used a credential that rekey keeps.
const maxUsedByLen = 64

var _ UsageReporter = (*HTTP)(nil)

// Usage calls GET {base}/credentials/{id}/usage, signed like every call and
// with a body naming the credential and the action. 404 means the issuer
// does not report usage (ErrUsageUnsupported). A last use later than now is
// taken as now: evidence never counts as use beyond the present, so it can
// hold a revocation only until its cap (README.md, issuer contract). An
// answer that cannot be read (not JSON, too large, a redirect) is an *Error
// and is no evidence either way.
func (h *HTTP) Usage(ctx context.Context, instanceID, credentialID string) (Usage, error) {
	u, err := h.credentialURL("usage", instanceID, credentialID)
	if err != nil {
		return Usage{}, err
	}
	a, err := h.do(ctx, "usage", http.MethodGet, u+"/usage", credentialBody(ActionUsage, instanceID, credentialID))
	switch {
	case err != nil:
		return Usage{}, err
	case a.status == http.StatusNotFound && a.page():
		// Heroku's router or a framework answered, not the issuer: no
		// evidence either way, so a hold keeps its last one.
		return Usage{}, &Error{Op: "usage", Status: a.status, Code: CodeNotFoundPage}
	case a.status == http.StatusNotFound:
		return Usage{}, ErrUsageUnsupported
	case !ok2xx(a.status):
		return Usage{}, answerError("usage", a.status, a.body)
	}
	return decodeUsage(a.status, a.body, h.now())
}

// decodeUsage reads a usage answer: {"last_used_at": RFC 3339 or null,
// "last_used_by": optional short hint}.
func decodeUsage(status int, body []byte, now time.Time) (Usage, error) {
	var r struct {
		LastUsedAt *string `json:"last_used_at"`
		LastUsedBy string  `json:"last_used_by"`
	}
	malformed := &Error{Op: "usage", Status: status, Code: CodeMalformed}
	if err := json.Unmarshal(body, &r); err != nil {
		return Usage{}, malformed
	}
	var u Usage
	if r.LastUsedAt != nil {
		at, err := time.Parse(time.RFC3339Nano, *r.LastUsedAt)
		if err != nil {
			return Usage{}, malformed
		}
		u.LastUsedAt = ClampUsage(at, now)
	}
	u.LastUsedBy = CleanUsedBy(r.LastUsedBy)
	return u, nil
}

// ClampUsage returns at, or now when at is later: a credential is never
// taken as used beyond the present.
func ClampUsage(at, now time.Time) time.Time {
	if at.After(now) {
		return now.UTC()
	}
	return at.UTC()
}

// CleanUsedBy keeps a usage hint only when it is short printable text
// (an address, a client name); anything else is dropped, not shown. So is
// text that looks like a token (secret.LooksGenerated), since the hint is
// kept in clear and shown to operators and the customer (I5).
func CleanUsedBy(s string) string {
	if len(s) > maxUsedByLen || secret.LooksGenerated(s) {
		return ""
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return ""
		}
	}
	return s
}
