package issuer

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// demoUse is a simulated user of a credential: a one-off dyno or an outside
// client that keeps using it until a given time.
type demoUse struct {
	until time.Time
	by    string
}

// demoUsage is the part of a Demo that answers usage questions.
type demoUsage struct {
	mu          sync.Mutex
	uses        map[string]demoUse // by credential id
	unsupported bool
}

var _ UsageReporter = (*Demo)(nil)

// WithoutUsage makes the Demo answer ErrUsageUnsupported, as an issuer
// without the usage endpoint does.
func WithoutUsage() DemoOption { return func(d *Demo) { d.usage.unsupported = true } }

// UseUntil simulates use of a credential by by (an address or a client
// name) from now until until: Usage reports it as used at the present
// moment until then, and at until afterwards. A later call replaces an
// earlier one; a zero until stops the use now.
func (d *Demo) UseUntil(credentialID string, until time.Time, by string) {
	if until.IsZero() {
		until = d.now()
	}
	d.usage.mu.Lock()
	defer d.usage.mu.Unlock()
	if d.usage.uses == nil {
		d.usage.uses = map[string]demoUse{}
	}
	d.usage.uses[credentialID] = demoUse{until: until, by: by}
}

// Usage reports the simulated last use of a credential: now while a
// UseUntil is running, its end once it stopped, zero when never used.
func (d *Demo) Usage(ctx context.Context, instanceID, credentialID string) (Usage, error) {
	if err := d.precheck(ctx, "usage", instanceID, credentialID, nil); err != nil {
		return Usage{}, err
	}
	d.usage.mu.Lock()
	use, ok := d.usage.uses[credentialID]
	unsupported := d.usage.unsupported
	d.usage.mu.Unlock()
	switch {
	case unsupported:
		return Usage{}, ErrUsageUnsupported
	case !ok:
		return Usage{}, nil
	}
	now := d.now()
	if use.until.After(now) {
		return Usage{LastUsedAt: now.UTC(), LastUsedBy: use.by}, nil
	}
	return Usage{LastUsedAt: use.until.UTC(), LastUsedBy: use.by}, nil
}

// usage answers GET /credentials/{id}/usage: 404 when the Demo does not
// report usage.
func (s *demoServer) usage(w http.ResponseWriter, r *http.Request, req webhookRequest) {
	u, err := s.d.Usage(r.Context(), req.InstanceID, r.PathValue("id"))
	switch {
	case errors.Is(err, ErrUsageUnsupported):
		writeError(w, http.StatusNotFound, "usage_unsupported")
		return
	case err != nil:
		writeIssuerError(w, err)
		return
	}
	var at any // null when never used
	if !u.LastUsedAt.IsZero() {
		at = u.LastUsedAt.Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, map[string]any{"last_used_at": at, "last_used_by": u.LastUsedBy})
}
