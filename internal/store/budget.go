package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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
	k := keyringKeys{keyrings: budgetsKey()}
	if err := announceKeyringScript.Run(ctx, s.rdb, k.list(), process, ttl.Milliseconds(), settings).Err(); err != nil {
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
	flat, err := readKeyringsScript.Run(ctx, s.rdb, keyringKeys{keyrings: budgetsKey()}.list()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read budgets: %w", err)
	}
	if len(flat) == 0 {
		return nil, nil
	}
	now, _ := strconv.ParseInt(flat[0], 10, 64)
	var live []BudgetAnnouncement
	for i := 1; i+1 < len(flat); i += 2 {
		until, settings, ok := strings.Cut(flat[i+1], "|")
		ms, err := strconv.ParseInt(until, 10, 64)
		if !ok || err != nil || ms <= now {
			continue
		}
		live = append(live, BudgetAnnouncement{Process: flat[i], Settings: settings, Until: time.UnixMilli(ms)})
	}
	slices.SortFunc(live, func(a, b BudgetAnnouncement) int { return strings.Compare(a.Process, b.Process) })
	return live, nil
}
