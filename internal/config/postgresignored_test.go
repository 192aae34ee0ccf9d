package config_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// The PostgreSQL issuer's settings given while REKEY_ISSUER is left at
// its default, http, are ignored: the warning says so, naming them and
// REKEY_ISSUER=postgres, never their values; a worker without the
// webhook's settings refuses to start saying the same.
func TestPostgresSettingsUnderTheHTTPIssuerAreWarnedOf(t *testing.T) {
	t.Parallel()
	servers := `{"main":"postgres://admin:pw-of-admin@db.example/postgres?sslmode=require"}`
	file := filepath.Join(t.TempDir(), "servers.json")
	if err := os.WriteFile(file, []byte(servers), 0o600); err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	cases := []struct {
		vars map[string]string
		want []string // the names the warning gives; none: no warning
	}{
		{map[string]string{"REKEY_POSTGRES_SERVERS": servers}, []string{"REKEY_POSTGRES_SERVERS is set"}},
		{map[string]string{"REKEY_POSTGRES_SERVERS_FILE": file}, []string{"REKEY_POSTGRES_SERVERS_FILE is set"}},
		{map[string]string{"REKEY_POSTGRES_SERVERS": servers, "REKEY_POSTGRES_KEY": key},
			[]string{"REKEY_POSTGRES_SERVERS and REKEY_POSTGRES_KEY are set"}},
		{map[string]string{"REKEY_POSTGRES_SERVERS": servers, "REKEY_ISSUER": "http"}, []string{"REKEY_POSTGRES_SERVERS is set"}},
		{map[string]string{"REKEY_POSTGRES_SERVERS": servers, "REKEY_ISSUER": "postgres"}, nil},
		{nil, nil},
	}
	for _, c := range cases {
		got := warningsNamed(t, c.vars, config.WarnPostgresIgnored)
		if len(got) != min(len(c.want), 1) {
			t.Errorf("%v: postgres_settings_ignored warnings %q, want %d", c.vars, got, min(len(c.want), 1))
			continue
		}
		for _, w := range got {
			for _, phrase := range append(c.want, "REKEY_ISSUER=postgres") {
				if !strings.Contains(w.Detail, phrase) {
					t.Errorf("%v: %q lacks %q", c.vars, w.Detail, phrase)
				}
			}
			if strings.Contains(w.Detail, "pw-of-admin") || strings.Contains(w.Detail, key) {
				t.Errorf("%v: the warning quotes a value: %q", c.vars, w.Detail)
			}
		}
		if len(c.want) > 0 {
			cfg, err := config.Load(env(c.vars))
			if err == nil {
				err = cfg.RequireWorker()
			}
			if err == nil || !strings.Contains(err.Error(), "REKEY_ISSUER=postgres") {
				t.Errorf("%v: RequireWorker() = %v, want it to name REKEY_ISSUER=postgres", c.vars, err)
			}
		}
	}
}
