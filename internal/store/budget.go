package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// budgetsKey is a HASH in which each running web, worker and clock process
// says what Heroku budget it spends under: field, the process's name;
// value, "until ms|settings", the settings as the process names them
// (REKEY_HEROKU_RATE and REKEY_RATE_SCOPE). It follows keyringsKey's rules:
// renewed every minute, good for a few, withdrawn on a clean stop, lapsed
// ones dropped by the next announcement, times Redis's own. Every process
// of a deployment must spend under one budget; one started with a typo
// (36000 for 3600) would spend ten times its share of Heroku's calls, and
// no limit of rekey's would notice.
func budgetsKey() string { return keyPrefix + "budgets" }

// BudgetAnnouncement is one running process's budget settings.
type BudgetAnnouncement struct {
	Process  string
	Settings string
	// Until is when the announcement lapses unless renewed, by Redis's clock.
	Until time.Time
}

// AnnounceBudget records that process spends under settings until ttl from
// now (by Redis's clock), and drops the announcements that have lapsed.
func (s *Store) AnnounceBudget(ctx context.Context, process, settings string, ttl time.Duration) error {
	if strings.Contains(settings, "|") {
		return fmt.Errorf("announce budget: settings %q hold a |", settings)
	}
	if err := s.announce(ctx, budgetsKey(), process, ttl, settings); err != nil {
		return fmt.Errorf("announce budget: %w", err)
	}
	return nil
}

// WithdrawBudget removes process's announcement, on a clean stop.
func (s *Store) WithdrawBudget(ctx context.Context, process string) error {
	if err := s.rdb.HDel(ctx, budgetsKey(), process).Err(); err != nil {
		return fmt.Errorf("withdraw budget: %w", err)
	}
	return nil
}

// Budgets returns the announcements that have not lapsed by Redis's clock,
// by process name. It only reads.
func (s *Store) Budgets(ctx context.Context) ([]BudgetAnnouncement, error) {
	live, err := s.announcements(ctx, budgetsKey())
	if err != nil {
		return nil, fmt.Errorf("read budgets: %w", err)
	}
	out := make([]BudgetAnnouncement, len(live))
	for i, a := range live {
		out[i] = BudgetAnnouncement{Process: a.process, Settings: a.value, Until: a.until}
	}
	return out, nil
}
