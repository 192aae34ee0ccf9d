package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

func TestPostgresVariablesAreNamedAndNeverEchoed(t *testing.T) {
	t.Parallel()
	const password = "adminpw-9f8e7d"
	cases := map[string]map[string]string{
		"REKEY_POSTGRES_SERVERS":      {"REKEY_POSTGRES_SERVERS": `{"main":"mysql://admin:` + password + `@db"}`},
		"REKEY_POSTGRES_SERVERS_FILE": {"REKEY_POSTGRES_SERVERS_FILE": filepath.Join(t.TempDir(), "missing.json")},
		"REKEY_POSTGRES_KEY":          {"REKEY_POSTGRES_KEY": "c2hvcnQ="},
		// The JSON given where its file's path goes.
		"REKEY_POSTGRES_SERVERS_FILE inline": {"REKEY_POSTGRES_SERVERS_FILE": `{"main":"postgres://admin:` + password + `@db/postgres"}`},
		"REKEY_POSTGRES_SERVERS_FILE url":    {"REKEY_POSTGRES_SERVERS_FILE": "postgres://admin:" + password + "@db/postgres"},
		// The id and the URL written the wrong way round.
		"REKEY_POSTGRES_SERVERS swapped": {"REKEY_POSTGRES_SERVERS": `{"postgres://admin:` + password + `@db/postgres":"main"}`},
		"REKEY_POSTGRES_SERVERS swapped object": {"REKEY_POSTGRES_SERVERS": `{"postgres://admin:` + password +
			`@db/postgres":{"admin_url":"main"}}`},
	}
	for name, vars := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(env(vars))
			name, _, _ := strings.Cut(name, " ")
			if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), password) {
				t.Fatalf("Load() = %v, want an error naming %s without the password", err, name)
			}
		})
	}
}

func TestPostgresIssuerReadsServersFromAFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "servers.json")
	data := `{"main":{"admin_url":"postgres://admin:pw@db.internal:5432/postgres?sslmode=require","app_url":"postgres://db.example.com:5432?sslmode=require"}}`
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(env(map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "REKEY_ENCRYPTION_KEYS": goodKey,
		"REKEY_ISSUER": "postgres", "REKEY_POSTGRES_SERVERS_FILE": file, "HEROKU_OAUTH_CLIENT_SECRET": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.RequireWorker(); err != nil {
		t.Fatalf("RequireWorker: %v", err)
	}
	if len(cfg.PostgresServers) != 1 || cfg.PostgresServers[0].ID != "main" || len(cfg.PostgresDerivationKey()) != 32 {
		t.Fatalf("servers = %v, key %d bytes", cfg.PostgresServers, len(cfg.PostgresDerivationKey()))
	}
	bare, _ := config.Load(env(map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "REKEY_ENCRYPTION_KEYS": goodKey,
		"REKEY_ISSUER": "postgres", "HEROKU_OAUTH_CLIENT_SECRET": "x"}))
	if err := bare.RequireWorker(); err == nil || !strings.Contains(err.Error(), "REKEY_POSTGRES_SERVERS") {
		t.Fatalf("RequireWorker without servers = %v, want an error naming REKEY_POSTGRES_SERVERS", err)
	}
}
