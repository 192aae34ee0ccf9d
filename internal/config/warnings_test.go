package config_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// Settings that make revocations early or holds long are accepted, as
// before, and named at start-up: each warning names its variables and the
// durations that result.
func TestWarnings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		vars map[string]string
		// want maps each warning expected to phrases of its detail.
		want map[string][]string
	}{
		{name: "defaults", vars: nil},
		{name: "grace below the min grace", vars: map[string]string{"REKEY_GRACE": "8m"}, want: map[string][]string{
			config.WarnShortGrace: {"REKEY_GRACE (8m0s) is shorter than REKEY_MIN_GRACE (10m0s)", "the grace floor is 8m0s"}}},
		{name: "grace below the min grace and minutes", vars: map[string]string{"REKEY_GRACE": "2m"}, want: map[string][]string{
			config.WarnShortGrace: {"REKEY_GRACE (2m0s) is shorter than REKEY_MIN_GRACE (10m0s)", "the grace floor is 2m0s",
				"a floor under 5m0s may revoke a credential an app still runs"}}},
		{name: "a short min grace", vars: map[string]string{"REKEY_MIN_GRACE": "1m"}, want: map[string][]string{
			config.WarnShortGrace: {"the grace floor is 1m0s (REKEY_MIN_GRACE; REKEY_GRACE is 2h0m0s)",
				"a floor under 5m0s may revoke"}}},
		{name: "rekey dev's grace", vars: map[string]string{"REKEY_GRACE": "30s", "REKEY_MIN_GRACE": "30s"}, want: map[string][]string{
			config.WarnShortGrace: {"the grace floor is 30s (REKEY_MIN_GRACE; REKEY_GRACE is 30s)"}}},
		{name: "a floor of five minutes", vars: map[string]string{"REKEY_MIN_GRACE": "5m"}},
		{name: "private space grace in minutes", vars: map[string]string{"REKEY_PRIVATE_SPACE_GRACE": "4m"}, want: map[string][]string{
			config.WarnShortGrace: {"REKEY_PRIVATE_SPACE_GRACE (4m0s) is shorter than REKEY_GRACE (2h0m0s)",
				"workers raise it to the grace floor, 10m0s"}}},
		{name: "private space grace below the grace", vars: map[string]string{"REKEY_PRIVATE_SPACE_GRACE": "1h"}, want: map[string][]string{
			config.WarnShortGrace: {"REKEY_PRIVATE_SPACE_GRACE (1h0m0s) is shorter than REKEY_GRACE (2h0m0s)"}}},
		{name: "the default hold under a lower ceiling", vars: map[string]string{"REKEY_MAX_GRACE": "12h"}, want: map[string][]string{
			config.WarnLongHold: {"REKEY_HOLD_MAX (24h0m0s) is longer than the grace ceiling (12h0m0s: REKEY_MAX_GRACE",
				"set REKEY_HOLD_MAX to at most 12h0m0s"}}},
		{name: "holds off: no hold to last long", vars: map[string]string{"REKEY_MAX_GRACE": "12h", "REKEY_HOLD_QUIET": "0"}},
		{name: "holds kept past their cap", vars: map[string]string{"REKEY_HOLD_AT_CAP": "hold"}, want: map[string][]string{
			config.WarnHoldForever: {"REKEY_HOLD_AT_CAP is hold", "kept past its cap (REKEY_HOLD_MAX)", "rekey holds release"}}},
		{name: "holds off, at cap hold", vars: map[string]string{"REKEY_HOLD_AT_CAP": "hold", "REKEY_HOLD_QUIET": "0"}},
		{name: "a period shorter than both graces", vars: map[string]string{"REKEY_ROTATION_PERIOD": "90m"}, want: map[string][]string{
			config.WarnShortPeriod: {"REKEY_ROTATION_PERIOD (1h30m0s) is shorter than REKEY_GRACE (2h0m0s) and " +
				"REKEY_PRIVATE_SPACE_GRACE (4h0m0s)", "two old credentials or more waiting",
				"refused once 3 wait (REKEY_MAX_PREVIOUS)"}}},
		{name: "a period shorter than the private space grace", vars: map[string]string{"REKEY_ROTATION_PERIOD": "3h",
			"REKEY_MAX_PREVIOUS": "0"}, want: map[string][]string{
			config.WarnShortPeriod: {"REKEY_ROTATION_PERIOD (3h0m0s) is shorter than REKEY_PRIVATE_SPACE_GRACE (4h0m0s): "}}},
		{name: "a period in minutes under a long grace", vars: map[string]string{"REKEY_ROTATION_PERIOD": "2160m",
			"REKEY_GRACE": "48h", "REKEY_PRIVATE_SPACE_GRACE": "48h"}, want: map[string][]string{
			config.WarnShortPeriod: {"REKEY_ROTATION_PERIOD (36h0m0s) is shorter than REKEY_GRACE (48h0m0s) and " +
				"REKEY_PRIVATE_SPACE_GRACE (48h0m0s)"}}},
		{name: "a period in minutes above the graces", vars: map[string]string{"REKEY_ROTATION_PERIOD": "2160m"},
			want: map[string][]string{config.WarnShortPeriod: {"REKEY_ROTATION_PERIOD (36h0m0s) is shorter than a week",
				"restart every 36h0m0s", "REKEY_HEROKU_RATE (4000 calls an hour) keeps up with the scheduled rotations " +
					"of at most 144000 instances", "2160h, is 90 days"}}},
		{name: "a period as long as the grace", vars: map[string]string{"REKEY_ROTATION_PERIOD": "4h"},
			want: map[string][]string{config.WarnShortPeriod: {"(4h0m0s) is shorter than a week", "at most 16000 instances"}}},
		{name: "a period of a week", vars: map[string]string{"REKEY_ROTATION_PERIOD": "168h"}},
		{name: "a monthly period", vars: map[string]string{"REKEY_ROTATION_PERIOD": "720h"}},
		{name: "a period with a digit too many", vars: map[string]string{"REKEY_ROTATION_PERIOD": "21600h"},
			want: map[string][]string{config.WarnLongPeriod: {"REKEY_ROTATION_PERIOD (21600h0m0s) is longer than a year",
				"once every 900 days", "2160h, is 90 days"}}},
		{name: "a yearly period", vars: map[string]string{"REKEY_ROTATION_PERIOD": "8760h"}},
		{name: "scheduled rotation off", vars: map[string]string{"REKEY_ROTATION_PERIOD": "0"}},
		{name: "a grace above the default ceiling", vars: map[string]string{"REKEY_GRACE": "2000h",
			"REKEY_PRIVATE_SPACE_GRACE": "2000h", "REKEY_HOLD_MAX": "0"}, want: map[string][]string{
			config.WarnLongGrace: {"REKEY_GRACE (2000h0m0s) and REKEY_PRIVATE_SPACE_GRACE (2000h0m0s) are longer than " +
				"REKEY_MAX_GRACE (168h0m0s), so the grace ceiling is 2000h0m0s", "set REKEY_MAX_GRACE to 2000h0m0s if that is meant"}}},
		{name: "a private space grace above a set ceiling", vars: map[string]string{"REKEY_MAX_GRACE": "3h"}, want: map[string][]string{
			config.WarnLongGrace: {"REKEY_PRIVATE_SPACE_GRACE (4h0m0s) is longer than REKEY_MAX_GRACE (3h0m0s), " +
				"so the grace ceiling is 4h0m0s"},
			config.WarnLongHold: {"REKEY_HOLD_MAX (24h0m0s) is longer than the grace ceiling (4h0m0s"}}},
		{name: "graces at the ceiling", vars: map[string]string{"REKEY_GRACE": "168h", "REKEY_PRIVATE_SPACE_GRACE": "168h"}},
		{name: "the monitoring password is the API token", vars: map[string]string{"REKEY_API_TOKEN": "same-value-0123456789",
			"REKEY_DASHBOARD_PASSWORD": "same-value-0123456789"}, want: map[string][]string{
			config.WarnSharedSecret: {"REKEY_API_TOKEN and REKEY_DASHBOARD_PASSWORD hold the same value", "whoever holds one holds both"}}},
		{name: "the previous API token is the token", vars: map[string]string{"REKEY_API_TOKEN": "same-value-0123456789",
			"REKEY_API_TOKEN_PREVIOUS": "same-value-0123456789"}, want: map[string][]string{
			config.WarnPreviousUnchanged: {"REKEY_API_TOKEN_PREVIOUS holds REKEY_API_TOKEN's value, so it adds nothing"}}},
		{name: "a Heroku secret signs the issuer's requests", vars: map[string]string{"HEROKU_SSO_SALT": "salt-0123456789abcdef",
			"REKEY_ISSUER_SECRET": "salt-0123456789abcdef"}, want: map[string][]string{
			config.WarnSharedSecret: {"REKEY_ISSUER_SECRET and HEROKU_SSO_SALT hold the same value"}}},
		{name: "a rate above Heroku's", vars: map[string]string{"REKEY_HEROKU_RATE": "36000"}, want: map[string][]string{
			config.WarnRateAboveHeroku: {"REKEY_HEROKU_RATE (36000 calls an hour) is above the about 4500"}}},
		{name: "a rate at Heroku's", vars: map[string]string{"REKEY_HEROKU_RATE": "4500"}},
		{name: "a PostgreSQL server over the network without TLS", vars: map[string]string{"REKEY_ISSUER": "postgres",
			"REKEY_POSTGRES_SERVERS": `{"main":"postgres://admin:pw-of-admin@db.example/postgres","tls":"postgres://admin:pw@db2.example/postgres?sslmode=require","local":"postgres://admin:pw@127.0.0.1/postgres","pref":"postgres://admin:pw@db3.example/postgres?sslmode=prefer"}`},
			want: map[string][]string{config.WarnPostgresWithoutTLS: {"PostgreSQL server main, pref (REKEY_POSTGRES_SERVERS)",
				"may cross the network in clear"}}},
		{name: "a PostgreSQL issuer keyed by the first of two encryption keys", vars: map[string]string{"REKEY_ISSUER": "postgres",
			"REKEY_POSTGRES_SERVERS": `{"local":"postgres://admin:pw@127.0.0.1/postgres"}`,
			"REKEY_ENCRYPTION_KEYS":  goodKey + "," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))},
			want: map[string][]string{config.WarnPostgresKeyFromOrder: {"REKEY_POSTGRES_KEY is not set",
				"lists the keys in another order does not recognise the roles"}}},
		{name: "a PostgreSQL issuer with its own key", vars: map[string]string{"REKEY_ISSUER": "postgres",
			"REKEY_POSTGRES_SERVERS": `{"local":"postgres://admin:pw@127.0.0.1/postgres"}`,
			"REKEY_ENCRYPTION_KEYS":  goodKey + "," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)),
			"REKEY_POSTGRES_KEY":     base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))}},
		{name: "secrets of their own", vars: map[string]string{"REKEY_API_TOKEN": "token-0123456789abcdef",
			"REKEY_DASHBOARD_PASSWORD": "password-0123456789ab", "REKEY_ISSUER_SECRET": "issuer-0123456789abcdef"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(env(tt.vars))
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings() = %q, want %d warnings", got, len(tt.want))
			}
			for _, w := range got {
				for _, phrase := range tt.want[w.Name] {
					if !strings.Contains(w.Detail, phrase) {
						t.Errorf("%s: %q lacks %q", w.Name, w.Detail, phrase)
					}
				}
				if tt.want[w.Name] == nil {
					t.Errorf("unexpected warning %s: %s", w.Name, w.Detail)
				}
			}
		})
	}
}

// A REKEY_HOLD_MAX set above the grace ceiling and a week is refused with
// a sentence naming it; one above the ceiling but within a week, and the
// default whatever the ceiling, are accepted (and warned of: TestWarnings).
func TestHoldMaxAboveTheGraceCeilingIsRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		vars map[string]string
		want string // in the error; empty: accepted
	}{
		{map[string]string{"REKEY_HOLD_MAX": "8760h"}, `REKEY_HOLD_MAX must be at most 168h0m0s (the grace ceiling: REKEY_MAX_GRACE`},
		{map[string]string{"REKEY_HOLD_MAX": "169h", "REKEY_MAX_GRACE": "12h"}, `got "169h"`},
		{map[string]string{"REKEY_HOLD_MAX": "24h", "REKEY_MAX_GRACE": "12h"}, ""}, // accepted before: warned of
		{map[string]string{"REKEY_HOLD_MAX": "300h", "REKEY_MAX_GRACE": "240h"}, `must be at most 240h0m0s`},
		{map[string]string{"REKEY_HOLD_MAX": "168h"}, ""},
		{map[string]string{"REKEY_HOLD_MAX": "200h", "REKEY_GRACE": "200h"}, ""},
		{map[string]string{"REKEY_HOLD_MAX": "0"}, ""},
		{map[string]string{"REKEY_MAX_GRACE": "1h"}, ""}, // the default 24h: warned of, not refused
	}
	for _, c := range cases {
		_, err := config.Load(env(c.vars))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v, want it accepted", c.vars, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: Load() = %v, want an error with %q", c.vars, err, c.want)
		}
	}
}

// A REKEY_ISSUER_SECRET shorter than 16 bytes is warned of, by name and
// never by value; the PostgreSQL issuer, which does not sign, is not.
func TestWeakIssuerSecret(t *testing.T) {
	t.Parallel()
	cases := []struct {
		vars map[string]string
		want bool
	}{
		{map[string]string{"REKEY_ISSUER_SECRET": "hunter2"}, true},
		{map[string]string{"REKEY_ISSUER_SECRET": "fifteen-bytes!!"}, true},
		{map[string]string{"REKEY_ISSUER_SECRET": "sixteen-bytes!!!"}, false},
		{map[string]string{"REKEY_ISSUER_SECRET": "local-issuer-secret"}, false},
		{map[string]string{"REKEY_ISSUER_SECRET": "hunter2", "REKEY_ISSUER": "postgres",
			"REKEY_POSTGRES_SERVERS": `{"main":"postgres://admin@db.example/postgres?sslmode=require"}`}, false},
		{nil, false}, // unset: the worker refuses to start (RequireWorker)
	}
	for _, c := range cases {
		got := warningsNamed(t, c.vars, config.WarnWeakIssuerSecret)
		if (len(got) == 1) != c.want || len(got) > 1 {
			t.Errorf("%v: weak_issuer_secret warnings %q, want %v", c.vars, got, c.want)
		}
		for _, w := range got {
			if !strings.Contains(w.Detail, "REKEY_ISSUER_SECRET is shorter than 16 bytes") {
				t.Errorf("%v: %q does not name the variable and the bound", c.vars, w.Detail)
			}
			if secret := c.vars["REKEY_ISSUER_SECRET"]; strings.Contains(w.Detail, secret) {
				t.Errorf("%v: the detail quotes the secret: %q", c.vars, w.Detail)
			}
		}
	}
}
