package config_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/issuer"
)

func env(m map[string]string) config.Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// warningsNamed loads vars and returns the warnings named name.
func warningsNamed(t *testing.T, vars map[string]string, name string) []config.Warning {
	t.Helper()
	cfg, err := config.Load(env(vars))
	if err != nil {
		t.Fatalf("%v: %v", vars, err)
	}
	var out []config.Warning
	for _, w := range cfg.Warnings() {
		if w.Name == name {
			out = append(out, w)
		}
	}
	return out
}

var goodKey = base64.StdEncoding.EncodeToString(make([]byte, 32))

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Grace != 2*time.Hour || c.RotationPeriod != 2160*time.Hour || c.HerokuRate >= 4500 ||
		c.HerokuAPIURL != "https://api.heroku.com" || c.HerokuIDURL != "https://id.heroku.com" ||
		c.MaintenanceWindow != "" || c.QuarantineAfter != 3 || c.AuditRetention != 720*time.Hour ||
		c.BreakerThreshold != 10 || c.BreakerFraction != 0.5 || c.BreakerWindow != 5*time.Minute ||
		c.MinGrace != 10*time.Minute || c.GraceFloor() != 10*time.Minute || c.MaxPrevious != 3 ||
		c.CustomerRotationsPerDay != 3 || !c.CustomerOnePerGrace || c.HoldQuiet != 15*time.Minute ||
		c.HoldRecheck != 5*time.Minute || c.HoldMax != 24*time.Hour || c.HoldAtCap != config.HoldAtCapRevoke || c.InsecureCookies ||
		c.IssuerVerify != issuer.VerifyAuto {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"REDIS_URL":                        {"REDIS_URL": "http://nope"},
		"PORT":                             {"PORT": "eighty"},
		"HEROKU_API_URL":                   {"HEROKU_API_URL": "ftp://x"},
		"REKEY_ENCRYPTION_KEYS":            {"REKEY_ENCRYPTION_KEYS": "c2hvcnQ="},
		"REKEY_GRACE":                      {"REKEY_GRACE": "two hours"},
		"REKEY_ROTATION_PERIOD":            {"REKEY_ROTATION_PERIOD": "-5h"},
		"REKEY_HEROKU_RATE":                {"REKEY_HEROKU_RATE": "0"},
		"REKEY_ISSUER":                     {"REKEY_ISSUER": "ldap"},
		"REKEY_RATE_SCOPE":                 {"REKEY_RATE_SCOPE": "galaxy"},
		"REKEY_REDIS_VERIFY_TLS":           {"REKEY_REDIS_VERIFY_TLS": "perhaps"},
		"REKEY_PRIVATE_SPACE_GRACE":        {"REKEY_PRIVATE_SPACE_GRACE": "10ms"},
		"REKEY_MAINTENANCE_WINDOW":         {"REKEY_MAINTENANCE_WINDOW": "05-05"},
		"REKEY_QUARANTINE_AFTER":           {"REKEY_QUARANTINE_AFTER": "-1"},
		"REKEY_MIN_GRACE":                  {"REKEY_MIN_GRACE": "1ms"},
		"REKEY_MAX_GRACE":                  {"REKEY_MAX_GRACE": "30s"},
		"REKEY_MAX_PREVIOUS":               {"REKEY_MAX_PREVIOUS": "many"},
		"REKEY_CUSTOMER_ONE_PER_GRACE":     {"REKEY_CUSTOMER_ONE_PER_GRACE": "sometimes"},
		"REKEY_CUSTOMER_ROTATIONS_PER_DAY": {"REKEY_CUSTOMER_ROTATIONS_PER_DAY": "-3"},
		"REKEY_AUDIT_RETENTION":            {"REKEY_AUDIT_RETENTION": "10m"},
		"REKEY_BREAKER_THRESHOLD":          {"REKEY_BREAKER_THRESHOLD": "1"},
		"REKEY_BREAKER_FRACTION":           {"REKEY_BREAKER_FRACTION": "1.5"},
		"REKEY_BREAKER_WINDOW":             {"REKEY_BREAKER_WINDOW": "1s"},
		"REKEY_ISSUER_ALLOW_HTTP":          {"REKEY_ISSUER_ALLOW_HTTP": "sometimes"},
		"REKEY_ISSUER_404_PAGE_REVOKED":    {"REKEY_ISSUER_404_PAGE_REVOKED": "maybe"},
		"REKEY_ISSUER_VERIFY":              {"REKEY_ISSUER_VERIFY": "sometimes"},
		"REKEY_INSECURE_COOKIES":           {"REKEY_INSECURE_COOKIES": "sometimes"},
		"REKEY_ISSUER_URL":                 {"REKEY_ISSUER_URL": "http://issuer.example"},
		"REKEY_HOLD_QUIET":                 {"REKEY_HOLD_QUIET": "-1m"},
		"REKEY_HOLD_RECHECK":               {"REKEY_HOLD_RECHECK": "10ms"},
		"REKEY_HOLD_MAX":                   {"REKEY_HOLD_MAX": "a day"},
		"REKEY_HOLD_AT_CAP":                {"REKEY_HOLD_AT_CAP": "panic"},
	}
	for name, vars := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(env(vars))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("Load() = %v, want an error naming %s", err, name)
			}
		})
	}
}

func TestRequireNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	base := map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "REKEY_ENCRYPTION_KEYS": goodKey}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		vars    map[string]string
		require func(*config.Config) error
		want    string
	}{
		{"no redis", map[string]string{"REKEY_ENCRYPTION_KEYS": goodKey}, (*config.Config).RequireProducer, "REDIS_URL"},
		{"no keys", map[string]string{"REDIS_URL": "redis://x:6379"}, (*config.Config).RequireProducer, "REKEY_ENCRYPTION_KEYS"},
		{"worker without heroku credentials", with(nil), (*config.Config).RequireWorker, "HEROKU_OAUTH_CLIENT_SECRET"},
		{"worker without issuer url", with(map[string]string{"HEROKU_OAUTH_CLIENT_SECRET": "s"}), (*config.Config).RequireWorker, "REKEY_ISSUER_URL"},
		{"web without token", with(nil), (*config.Config).RequireWeb, "REKEY_API_TOKEN"},
		{"web with a short previous token", with(map[string]string{"REKEY_API_TOKEN": "0123456789abcdef0123",
			"REKEY_DASHBOARD_PASSWORD": "password", "HEROKU_SSO_SALT": "salt", "REKEY_API_TOKEN_PREVIOUS": "old"}),
			(*config.Config).RequireWeb, "REKEY_API_TOKEN_PREVIOUS must be at least 16 characters"},
		// V1's pair with its password missing (misspelt, or left out): with
		// an OAuth secret the worker would start and fail every V1 push.
		{"worker with a V1 id and no password", with(map[string]string{"HEROKU_OAUTH_CLIENT_SECRET": "s",
			"REKEY_ISSUER_URL": "https://issuer.example.com", "REKEY_ISSUER_SECRET": "0123456789abcdef0123",
			"HEROKU_ADDON_ID": "myaddon"}), (*config.Config).RequireWorker, "HEROKU_ADDON_PASSWORD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(env(c.vars))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.require(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("require = %v, want it to name %s", err, c.want)
			}
		})
	}
}

func TestRedisURLPasswordNeverInErrors(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(map[string]string{"REDIS_URL": "redis://:hunter2@host:notaport"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Load() = %v; want an error without the password", err)
	}
}

func TestMaintenanceWindow(t *testing.T) {
	t.Parallel()
	cases := map[string]string{"2-5": "02-05", "22-04": "22-04", " 00-06 ": "00-06", "18-24": "18-24"}
	for in, want := range cases {
		c, err := config.Load(env(map[string]string{"REKEY_MAINTENANCE_WINDOW": in}))
		if err != nil {
			t.Errorf("REKEY_MAINTENANCE_WINDOW=%q: %v", in, err)
		} else if c.MaintenanceWindow != want {
			t.Errorf("REKEY_MAINTENANCE_WINDOW=%q read as %q, want %q", in, c.MaintenanceWindow, want)
		}
	}
	for _, bad := range []string{"2", "02-25", "00-24", "a-b", "-1-3"} {
		if _, err := config.Load(env(map[string]string{"REKEY_MAINTENANCE_WINDOW": bad})); err == nil {
			t.Errorf("REKEY_MAINTENANCE_WINDOW=%q accepted", bad)
		}
	}
}

func TestBreakerSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"REKEY_BREAKER_THRESHOLD": "0", "REKEY_BREAKER_FRACTION": "1",
		"REKEY_BREAKER_WINDOW": "90s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.BreakerThreshold != 0 || c.BreakerFraction != 1 || c.BreakerWindow != 90*time.Second {
		t.Fatalf("breaker settings = %d, %v, %s", c.BreakerThreshold, c.BreakerFraction, c.BreakerWindow)
	}
	for name, bad := range map[string]string{"REKEY_BREAKER_THRESHOLD": "-3", "REKEY_BREAKER_FRACTION": "0",
		"REKEY_BREAKER_WINDOW": "soon"} {
		if _, err := config.Load(env(map[string]string{name: bad})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: Load() = %v, want an error naming it", name, bad, err)
		}
	}
}

func TestIssuerURLMustBeHTTPSUnlessLoopbackOrAllowed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url, allow string
		ok         bool
	}{
		{"https://issuer.example/hooks", "", true},
		{"http://127.0.0.1:8080", "", true},
		{"http://127.9.8.7", "", true},
		{"http://[::1]:9000/x", "", true},
		{"http://localhost:5001", "", true},
		{"http://issuer.example", "", false},
		{"http://localhost.issuer.example", "", false},
		{"http://10.0.0.7:80", "", false},
		{"http://issuer.example", "false", false},
		{"http://issuer.example", "true", true},
	}
	for _, c := range cases {
		_, err := config.Load(env(map[string]string{"REKEY_ISSUER_URL": c.url, "REKEY_ISSUER_ALLOW_HTTP": c.allow}))
		if c.ok && err != nil {
			t.Errorf("REKEY_ISSUER_URL=%s ALLOW_HTTP=%q: %v", c.url, c.allow, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "REKEY_ISSUER_ALLOW_HTTP") || !strings.Contains(err.Error(), "REKEY_ISSUER_URL")) {
			t.Errorf("REKEY_ISSUER_URL=%s ALLOW_HTTP=%q: %v, want an error naming both variables", c.url, c.allow, err)
		}
	}
}

func TestGraceFloorIsTheLowerOfMinGraceAndGrace(t *testing.T) {
	t.Parallel()
	cases := []struct {
		vars map[string]string
		want time.Duration
	}{
		{nil, 10 * time.Minute},
		{map[string]string{"REKEY_MIN_GRACE": "30m"}, 30 * time.Minute},
		{map[string]string{"REKEY_GRACE": "2s"}, 2 * time.Second},
		{map[string]string{"REKEY_GRACE": "2s", "REKEY_MIN_GRACE": "1s"}, time.Second},
	}
	for _, c := range cases {
		cfg, err := config.Load(env(c.vars))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.GraceFloor(); got != c.want {
			t.Errorf("%v: GraceFloor() = %s, want %s", c.vars, got, c.want)
		}
	}
}

func TestEveryBadVariableIsReportedAtOnce(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(map[string]string{"PORT": "eighty", "REKEY_GRACE": "two hours", "REKEY_RATE_SCOPE": "galaxy"}))
	if err == nil {
		t.Fatal("Load() accepted three bad variables")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("Load() = %q; want three sentences, one per line", err)
	}
	for i, name := range []string{"PORT", "REKEY_GRACE", "REKEY_RATE_SCOPE"} {
		if !strings.HasPrefix(lines[i], name+" must be") {
			t.Errorf("line %d = %q; want the sentence for %s", i+1, lines[i], name)
		}
	}
}

func TestRequireNamesEveryMissingVariableAtOnce(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.RequireWeb()
	if err == nil {
		t.Fatal("RequireWeb() accepted an empty environment")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"REDIS_URL", "REKEY_ENCRYPTION_KEYS", "REKEY_API_TOKEN", "REKEY_DASHBOARD_PASSWORD", "HEROKU_SSO_SALT"}
	if len(lines) != len(want) {
		t.Fatalf("RequireWeb() = %q; want %d sentences, one per line", err, len(want))
	}
	for i, name := range want {
		if !strings.HasPrefix(lines[i], name+" must be set") {
			t.Errorf("line %d = %q; want the sentence for %s", i+1, lines[i], name)
		}
	}
}

func TestGraceCeilingIsTheHighestOfMaxGraceAndTheDefaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		vars map[string]string
		want time.Duration
	}{
		{nil, 7 * 24 * time.Hour},
		{map[string]string{"REKEY_MAX_GRACE": "12h"}, 12 * time.Hour},
		{map[string]string{"REKEY_MAX_GRACE": "3h"}, 4 * time.Hour}, // REKEY_PRIVATE_SPACE_GRACE's default
		{map[string]string{"REKEY_MAX_GRACE": "1h", "REKEY_GRACE": "200h"}, 200 * time.Hour},
	}
	for _, c := range cases {
		cfg, err := config.Load(env(c.vars))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.GraceCeiling(); got != c.want {
			t.Errorf("%v: GraceCeiling() = %s, want %s", c.vars, got, c.want)
		}
	}
}

// TestURLsRekeyCannotUseNameTheVariable: a Heroku or issuer URL with a
// user, a query or a fragment is refused by the clients at start-up (the
// worker only once Redis answers), with an error naming neither the
// variable nor the value; Load refuses it, naming the variable, and never
// echoes the value, which may hold a password.
func TestURLsRekeyCannotUseNameTheVariable(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"HEROKU_API_URL", "HEROKU_ID_URL", "REKEY_ISSUER_URL"} {
		for _, v := range []string{"https://user:hunter2@host.example", "https://host.example/hooks?token=hunter2",
			"https://host.example/#hunter2"} {
			_, err := config.Load(env(map[string]string{name: v}))
			if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s=%s: Load() = %v, want an error naming %s, not the value", name, v, err, name)
			}
		}
	}
}

// The sentence for a missing REKEY_ENCRYPTION_KEYS sends a one-shot
// command's user to the running processes' value, and keeps "make one"
// for a first setup: a new key reads none of the sealed data.
func TestMissingEncryptionKeysPointsAtTheProcessesValue(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env(map[string]string{"REDIS_URL": "redis://localhost:6379"}))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.RequireProducer()
	if err == nil {
		t.Fatal("RequireProducer() accepted no REKEY_ENCRYPTION_KEYS")
	}
	for _, want := range []string{"heroku config:get REKEY_ENCRYPTION_KEYS", "only for a first setup", "openssl rand -base64 32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("RequireProducer() = %q; want it to say %q", err, want)
		}
	}
}

// A period or grace written in days, as people count them, is refused with
// its value in hours: Go durations have no days.
func TestADurationInDaysIsGivenBackInHours(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"REKEY_ROTATION_PERIOD": "Go durations have no days: 90d is 2160h",
		"REKEY_GRACE":           "Go durations have no days: 90d is 2160h",
	} {
		_, err := config.Load(env(map[string]string{name: "90d"}))
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=90d: %v, want it refused saying %q", name, err, want)
		}
	}
}
