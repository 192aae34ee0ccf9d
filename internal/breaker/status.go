package breaker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// ResumeCommand is what an operator runs to resume after an opening.
const ResumeCommand = "rekey breaker resume"

// Status is the breaker as `rekey breaker status --json` prints it.
type Status struct {
	Open     bool       `json:"open"`
	OpenedAt *time.Time `json:"opened_at,omitempty"`
	// Reason says what opened it, while it is open.
	Reason string `json:"reason,omitempty"`
	// BulkPaused is whether the bulk queue is paused: true while open,
	// unless pausing it failed (resume then repairs it).
	BulkPaused bool  `json:"bulk_paused"`
	Openings   int64 `json:"openings"`
	// ResumedAt and ResumedBy are the last resume's.
	ResumedAt *time.Time `json:"resumed_at,omitempty"`
	ResumedBy string     `json:"resumed_by,omitempty"`
	// Window is what the breaker weighs now.
	Window WindowStatus `json:"window"`
	Policy PolicyStatus `json:"policy"`
}

// WindowStatus counts the distinct instances denied, and answered at all,
// within the policy's window up to now.
type WindowStatus struct {
	Denied   int64 `json:"denied"`
	Answered int64 `json:"answered"`
}

// PolicyStatus is the policy of the process that reads the status.
type PolicyStatus struct {
	Threshold int     `json:"threshold"`
	Fraction  float64 `json:"fraction"`
	Window    string  `json:"window"`
}

// Status reads the breaker's state, the bulk queue's and the window's.
func (b *Breaker) Status(ctx context.Context) (Status, error) {
	st, err := b.p.Store.BreakerState(ctx)
	if err != nil {
		return Status{}, err
	}
	s := Status{Open: st.Open(), Openings: st.Openings, OpenedAt: timePtr(st.OpenedAt),
		ResumedAt: timePtr(st.ResumedAt), ResumedBy: st.ResumedBy,
		Policy: PolicyStatus{Threshold: b.p.Policy.Threshold, Fraction: b.p.Policy.Fraction, Window: b.p.Policy.Window.String()}}
	if s.Open {
		s.Reason = Reason(st)
	}
	if s.BulkPaused, err = b.paused(); err != nil {
		return s, err
	}
	if b.p.Policy.Window > 0 {
		s.Window.Denied, s.Window.Answered, err = b.p.Store.BreakerWindow(ctx, b.p.Policy.Window)
	}
	return s, err
}

// Reason says what opened the breaker, such as "25 of 30 distinct
// instances answered 403 forbidden within 42s".
func Reason(st store.BreakerState) string {
	type kind struct {
		n    int
		what string
	}
	var seen []kind
	for _, k := range []kind{{st.Unauthorized, "401 unauthorized"}, {st.Forbidden, "403 forbidden"},
		{st.Unexpected, "in ways Heroku never does (2xx without a config, redirects, 4xx without Heroku's error id: is HEROKU_API_URL or HEROKU_ID_URL Heroku's?)"}} {
		if k.n > 0 {
			seen = append(seen, k)
		}
	}
	what := "403 forbidden" // a state written before the counts were kept
	switch {
	case len(seen) == 1:
		what = seen[0].what
	case len(seen) > 1:
		parts := make([]string, len(seen))
		for i, k := range seen {
			parts[i] = fmt.Sprintf("%s (%d)", k.what, k.n)
		}
		what = strings.Join(parts, " or ")
	}
	span := max(st.OpenedAt.Sub(st.FirstDeniedAt).Round(time.Second), time.Second)
	return fmt.Sprintf("%d of %d distinct instances answered %s within %s", st.Denied, st.Answered, what, span)
}

// Describe is the breaker's line in `rekey scheduler status`, such as
// "OPEN since 2026-03-01T12:00:00Z, reason: 25 of 30 distinct instances
// answered 403 forbidden within 42s; resume with `rekey breaker resume`".
func Describe(st store.BreakerState) string {
	if !st.Open() {
		return "closed"
	}
	return describeOpen(st.OpenedAt, Reason(st))
}

// Line is Describe for a Status.
func (s Status) Line() string {
	if !s.Open || s.OpenedAt == nil {
		return "closed"
	}
	return describeOpen(*s.OpenedAt, s.Reason)
}

func describeOpen(at time.Time, reason string) string {
	return fmt.Sprintf("OPEN since %s, reason: %s; resume with `%s`", at.UTC().Format(time.RFC3339), reason, ResumeCommand)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
