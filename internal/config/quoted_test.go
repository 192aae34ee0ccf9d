package config_test

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// A secret written with its quotes (REKEY_API_TOKEN="..." in a .env file,
// or a heroku config:set that kept them) is taken with them, and would only
// show as 401s or signature failures: it is warned of at start-up by name,
// never by value.
func TestQuotedSecretIsWarnedOfByName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"REKEY_API_TOKEN", "REKEY_ISSUER_SECRET", "REKEY_DASHBOARD_PASSWORD", "HEROKU_SSO_SALT",
		"HEROKU_OAUTH_CLIENT_SECRET", "HEROKU_ADDON_PASSWORD", "HEROKU_ADDON_ID"} {
		for _, v := range []string{`"tok-0123456789abcdef"`, `'tok-0123456789abcdef'`, ` "tok-0123456789abcdef" `} {
			got := warningsNamed(t, map[string]string{name: v}, config.WarnQuotedValue)
			if len(got) != 1 || !strings.Contains(got[0].Detail, name+"'s value is wrapped in quotes") {
				t.Errorf("%s=%s: quoted_value warnings %q, want one naming %s", name, v, got, name)
			}
			for _, w := range got {
				if strings.Contains(w.Detail, "tok-0123") {
					t.Errorf("%s=%s: the warning quotes the value: %q", name, v, w.Detail)
				}
			}
		}
	}
	for _, v := range []string{"tok-0123456789abcdef", `"tok-0123456789abcdef`, `tok-"0123456789abcdef"`, `"`, `'tok"`} {
		for _, w := range warningsNamed(t, map[string]string{"REKEY_API_TOKEN": v}, config.WarnQuotedValue) {
			t.Errorf("REKEY_API_TOKEN=%s: unexpected warning %q", v, w.Detail)
		}
	}
}

// A value refused for its quotes (REKEY_GRACE="2h") is refused with a
// sentence naming the quotes, not one about duration units or booleans.
func TestQuotedValueIsRefusedNamingTheQuotes(t *testing.T) {
	t.Parallel()
	for name, v := range map[string]string{"REKEY_GRACE": `"2h"`, "REKEY_CUSTOMER_ONE_PER_GRACE": `'false'`,
		"REKEY_CONCURRENCY": `"10"`, "REKEY_ISSUER": `"postgres"`, "REKEY_ISSUER_URL": `"https://issuer.example"`,
		"REDIS_URL": `"redis://:pw@127.0.0.1:6379/0"`, "REKEY_ENCRYPTION_KEYS": `"` + goodKey + `"`,
		"REKEY_MAINTENANCE_WINDOW": `"02-05"`, "REKEY_ISSUER_VERIFY_RECHECKS": `"1s,2s"`} {
		_, err := config.Load(env(map[string]string{name: v}))
		if err == nil {
			t.Errorf("%s=%s: accepted", name, v)
			continue
		}
		want := name + "'s value is wrapped in quotes"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: Load() = %v, want it to say %q", name, v, err, want)
		}
		if strings.Contains(err.Error(), "units ns, us") {
			t.Errorf("%s=%s: the error speaks of duration units: %v", name, v, err)
		}
		if strings.Contains(err.Error(), ":pw@") || strings.Contains(err.Error(), goodKey) {
			t.Errorf("%s=%s: the error quotes a secret: %v", name, v, err)
		}
	}
}
