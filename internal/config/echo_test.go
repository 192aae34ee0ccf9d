package config_test

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// A URL, a password or a key pasted into the wrong variable (REKEY_ISSUER
// for REKEY_ISSUER_URL, a Postgres admin URL for REKEY_ISSUER=postgres) is
// refused without being quoted: start-up errors go to the dyno's log and its
// drains.
func TestRefusedValuesThatLookSecretAreNotQuoted(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, value, secret string }{
		{"REKEY_ISSUER", "postgres://admin:s3cretpw@db.example.com/postgres", "s3cretpw"},
		{"REKEY_ISSUER", "https://issuer.example.com/hooks/Tok3nXYZ", "tok3nxyz"},
		{"REKEY_LOG_LEVEL", "sk_live_4eC39HqLyjWDarjtT1zd", "4ec39hqlyjwdarjtt1zd"},
		{"REKEY_CONCURRENCY", "redis://:pAssw0rd@host:6379", "pAssw0rd"},
		{"REKEY_GRACE", "3f9a1c0de4b27a6f", "3f9a1c0de4b27a6f"},
		{"REKEY_INSECURE_COOKIES", "admin@s3cretpw", "s3cretpw"},
		{"REKEY_BREAKER_FRACTION", "0.5 c2VjcmV0c2VjcmV0c2VjcmV0", "c2VjcmV0c2VjcmV0c2VjcmV0"},
		{"REKEY_MAINTENANCE_WINDOW", "Abcdef0123456789", "Abcdef0123456789"},
		{"REKEY_ISSUER_VERIFY_RECHECKS", "1s,Zyx9876543210abc", "Zyx9876543210abc"},
		{"REKEY_HOLD_MAX", "8760h Zyx9876543210abc", "Zyx9876543210abc"},
	}
	for _, tc := range cases {
		_, err := config.Load(env(map[string]string{tc.name: tc.value}))
		if err == nil {
			t.Fatalf("%s=%s accepted", tc.name, tc.value)
		}
		if !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: error does not name it: %v", tc.name, err)
		}
		if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.secret)) {
			t.Errorf("%s: error quotes the value: %v", tc.name, err)
		}
	}
	// A plain mistake is still quoted, so the operator sees what was read.
	for name, value := range map[string]string{"REKEY_GRACE": "1d12h", "REKEY_HEROKU_RATE": "4,500",
		"REKEY_ISSUER": "ldap", "REKEY_MAINTENANCE_WINDOW": "02:00-05:00", "PORT": "$PORT"} {
		_, err := config.Load(env(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), `"`+strings.ToLower(value)+`"`) && !strings.Contains(err.Error(), `"`+value+`"`) {
			t.Errorf("%s=%s: error does not quote it: %v", name, value, err)
		}
	}
}

// A secret's value pasted into another variable is not quoted in that
// variable's refusal, even when it reads as words, as a password a person
// chose does: REKEY_DASHBOARD_PASSWORD's value in REKEY_HOLD_MAX was
// quoted whole, and HEROKU_SSO_SALT's in REKEY_LOG_LEVEL in lower case.
func TestRefusedValuesHoldingASecretsValueAreNotQuoted(t *testing.T) {
	t.Parallel()
	cases := []struct{ secretName, secretValue, name, value string }{
		{"REKEY_DASHBOARD_PASSWORD", "Harbor-Sunflower-Teapot", "REKEY_HOLD_MAX", "Harbor-Sunflower-Teapot"},
		{"HEROKU_SSO_SALT", "QuietOrchardLantern", "REKEY_LOG_LEVEL", "QuietOrchardLantern"},
		{"REKEY_API_TOKEN", "purple-monkey-dishwasher-token", "REKEY_HEROKU_RATE", " purple-monkey-dishwasher-token"},
		{"HEROKU_ADDON_PASSWORD", "correcthorsebattery", "REKEY_MAINTENANCE_WINDOW", "02-05 correcthorsebattery"},
		{"REKEY_ISSUER_SECRET_PREVIOUS", "old-issuer-words-kept", "REKEY_INSECURE_COOKIES", "old-issuer-words-kept"},
	}
	for _, tc := range cases {
		_, err := config.Load(env(map[string]string{tc.secretName: tc.secretValue, tc.name: tc.value}))
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Fatalf("%s=%s: error %v, want one naming it", tc.name, tc.value, err)
		}
		if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.secretValue)) {
			t.Errorf("%s holding %s's value: error quotes it: %v", tc.name, tc.secretName, err)
		}
	}
}
