package config_test

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// go-redis reads a REDIS_URL path of slashes alone (redis://host:6379//,
// what redis://host:6379/${DB}/ becomes with DB unset) as database 0
// without a word: it is refused, naming the database number it lacks.
// Every path that names a database, or none with a single slash, works as
// before.
func TestRedisURLPathWithoutADatabaseNumberIsRefused(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"redis://:pw@127.0.0.1:6379//", "redis://127.0.0.1:6379///", "rediss://:pw@127.0.0.1:6380//"} {
		_, err := config.Load(env(map[string]string{"REDIS_URL": u}))
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL's path names no database") {
			t.Errorf("REDIS_URL=%s: Load() = %v, want it refused for its path", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("REDIS_URL=%s: the error quotes the password: %v", u, err)
		}
	}
	for u, db := range map[string]int{"redis://127.0.0.1:6379": 0, "redis://127.0.0.1:6379/": 0, "redis://127.0.0.1:6379/0": 0,
		"redis://127.0.0.1:6379/2": 2, "redis://127.0.0.1:6379/2/": 2, "redis://127.0.0.1:6379//2": 2,
		"redis://127.0.0.1:6379/?db=3": 3, "redis://127.0.0.1:6379//?db=3": 3, "redis://127.0.0.1:6379?db=4": 4} {
		cfg, err := config.Load(env(map[string]string{"REDIS_URL": u}))
		if err != nil {
			t.Errorf("REDIS_URL=%s: %v, want it accepted", u, err)
			continue
		}
		opt, err := cfg.RedisOptions()
		if err != nil || opt.DB != db {
			t.Errorf("REDIS_URL=%s: RedisOptions() = %v, %v; want database %d", u, opt, err, db)
		}
	}
}
