package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// sharedSettingsKey is a HASH in which each running web, worker and clock
// process says what it runs with of the settings every process of a
// deployment must share (the Heroku budget, REKEY_HEROKU_RATE and
// REKEY_RATE_SCOPE, and the graces): field, the process's name; value,
// "until ms|settings". It follows keyringsKey's rules: renewed every
// minute, good for a few, withdrawn on a clean stop, lapsed ones dropped by
// the next announcement, times Redis's own. On Heroku every dyno of an app
// has one environment; on a VM a process started with a typo would spend
// its own budget beside the others' (36000 for 3600), or revoke an old
// credential sooner than the web process told the customer.
func sharedSettingsKey() string { return keyPrefix + "shared_settings" }

// SettingsAnnouncement is one running process's shared settings.
type SettingsAnnouncement struct {
	Process  string
	Settings string
	// Until is when the announcement lapses unless renewed, by Redis's clock.
	Until time.Time
}

// AnnounceSharedSettings records that process runs with settings until ttl
// from now (by Redis's clock), and drops the announcements that have lapsed.
func (s *Store) AnnounceSharedSettings(ctx context.Context, process, settings string, ttl time.Duration) error {
	if strings.Contains(settings, "|") {
		return fmt.Errorf("announce settings: %q holds a |", settings)
	}
	if err := s.announce(ctx, sharedSettingsKey(), process, ttl, settings); err != nil {
		return fmt.Errorf("announce settings: %w", err)
	}
	return nil
}

// WithdrawSharedSettings removes process's announcement, on a clean stop.
func (s *Store) WithdrawSharedSettings(ctx context.Context, process string) error {
	if err := s.rdb.HDel(ctx, sharedSettingsKey(), process).Err(); err != nil {
		return fmt.Errorf("withdraw settings: %w", err)
	}
	return nil
}

// SharedSettings returns the announcements that have not lapsed by Redis's
// clock, by process name. It only reads.
func (s *Store) SharedSettings(ctx context.Context) ([]SettingsAnnouncement, error) {
	live, err := s.announcements(ctx, sharedSettingsKey())
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	out := make([]SettingsAnnouncement, len(live))
	for i, a := range live {
		out[i] = SettingsAnnouncement{Process: a.process, Settings: a.value, Until: a.until}
	}
	return out, nil
}

// SettingValue is one value of a shared setting and the processes that
// announce it.
type SettingValue struct {
	Setting   string // "REKEY_HEROKU_RATE=3600"
	Processes []string
}

// SettingsDisagreements compares live announcements setting by setting
// (the NAME=value words of each) and returns the values of every setting
// that not all the processes announcing it give alike, by setting and
// value. A setting only some processes announce (the issuer, which a clock
// process may run without) is compared among those.
func SettingsDisagreements(live []SettingsAnnouncement) [][]SettingValue {
	byName := map[string]map[string][]string{} // name, then value, to processes
	for _, a := range live {
		for _, word := range strings.Fields(a.Settings) {
			name, _, _ := strings.Cut(word, "=")
			if byName[name] == nil {
				byName[name] = map[string][]string{}
			}
			byName[name][word] = append(byName[name][word], a.Process)
		}
	}
	var out [][]SettingValue
	for _, values := range byName {
		if len(values) < 2 {
			continue
		}
		vs := make([]SettingValue, 0, len(values))
		for word, processes := range values {
			slices.Sort(processes)
			vs = append(vs, SettingValue{Setting: word, Processes: processes})
		}
		slices.SortFunc(vs, func(a, b SettingValue) int { return strings.Compare(a.Setting, b.Setting) })
		out = append(out, vs)
	}
	slices.SortFunc(out, func(a, b []SettingValue) int { return strings.Compare(a[0].Setting, b[0].Setting) })
	return out
}

// AnnouncedValue is setting name as every announcement in live that gives
// it has it: found false when none does, disagree true when they differ.
func AnnouncedValue(live []SettingsAnnouncement, name string) (v string, found, disagree bool) {
	for _, a := range live {
		for _, word := range strings.Fields(a.Settings) {
			val, ok := strings.CutPrefix(word, name+"=")
			if !ok {
				continue
			}
			if found && val != v {
				return "", false, true
			}
			v, found = val, true
		}
	}
	return v, found, false
}

// WindowSetting is the setting a clock announces its maintenance window
// as, with the shared ones: only clocks schedule.
const WindowSetting = "REKEY_MAINTENANCE_WINDOW"

// AnnouncedWindow is the maintenance window the running clocks in live
// announce (nil: none), and ok when they announce one they agree on and
// that reads as a window. The next rotation times a process tells keep to
// it, as the clocks schedule them.
func AnnouncedWindow(live []SettingsAnnouncement) (w *Window, ok bool) {
	v, found, _ := AnnouncedValue(live, WindowSetting)
	switch {
	case !found:
		return nil, false
	case v == "":
		return nil, true
	}
	parsed, err := ParseWindow(v)
	if err != nil {
		return nil, false
	}
	return &parsed, true
}
