package web

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestParseNavData(t *testing.T) {
	t.Parallel()
	// "é?" and "ÿ>" make the standard and URL alphabets differ.
	doc := `{"addon":"Rekey é?ÿ>","appname":"my-app","addons":[{"slug":"rekey","name":"Rekey","current":true}]}`
	long := `{"addon":"` + strings.Repeat("x", 300) + `","appname":"a\u0000b"}`
	tests := []struct {
		name, raw string
		want      navData
	}{
		{"Heroku's form: URL alphabet, no padding", base64.RawURLEncoding.EncodeToString([]byte(doc)), navData{"Rekey é?ÿ>", "my-app"}},
		{"standard alphabet, padded", base64.StdEncoding.EncodeToString([]byte(doc)), navData{"Rekey é?ÿ>", "my-app"}},
		{"URL alphabet, padded", base64.URLEncoding.EncodeToString([]byte(doc)), navData{"Rekey é?ÿ>", "my-app"}},
		{"long names are cut, control characters dropped", base64.RawURLEncoding.EncodeToString([]byte(long)), navData{strings.Repeat("x", maxNameLen), "ab"}},
		{"not JSON", base64.RawURLEncoding.EncodeToString([]byte("nav-data")), navData{}},
		{"not base64", "%%%", navData{}},
		{"empty", "", navData{}},
	}
	for _, tt := range tests {
		if got := parseNavData(tt.raw); got != tt.want {
			t.Errorf("%s: parseNavData = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestPlainDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[string]string{"90s": "1 minute 30 seconds", "2h": "2 hours", "1s": "1 second",
		"90m": "1 hour 30 minutes", "1h0m1s": "1 hour 1 second", "30s": "30 seconds", "4h": "4 hours", "400ms": "less than a second"} {
		dur, _ := time.ParseDuration(d)
		if got := plainDuration(dur); got != want {
			t.Errorf("plainDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
