package config_test

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// An operator who pastes REDIS_URL without its "redis://" scheme gets a
// parse error from net/url that quotes the whole value, password included;
// scrubRedisError only recognises a value containing "://".
func TestRedisURLWithoutSchemeKeepsPasswordOutOfErrors(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(map[string]string{"REDIS_URL": ":hunter2@ec2-1-2-3-4.compute.amazonaws.com:6379"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Load() = %v; want an error without the password", err)
	}
}

// A process's Redis connections have a ceiling that does not grow with the
// CPUs it sees: REKEY_REDIS_POOL_SIZE, 10 by default, pipelines included.
// A pool size written into REDIS_URL is the operator's and wins.
func TestRedisPoolSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		url, size      string
		pool, pipeline int
	}{
		{"default", "redis://127.0.0.1:6379/0", "", config.DefaultRedisPoolSize, -1},
		{"set", "redis://127.0.0.1:6379/0", "4", 4, -1},
		{"REDIS_URL's own", "redis://127.0.0.1:6379/0?pool_size=7&pipeline_pool_size=2", "4", 7, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"REDIS_URL": tc.url}
			if tc.size != "" {
				vars["REKEY_REDIS_POOL_SIZE"] = tc.size
			}
			cfg, err := config.Load(env(vars))
			if err != nil {
				t.Fatal(err)
			}
			opt, err := cfg.RedisOptions()
			if err != nil {
				t.Fatal(err)
			}
			if opt.PoolSize != tc.pool || opt.PipelinePoolSize != tc.pipeline {
				t.Errorf("pool %d, pipeline pool %d; want %d and %d", opt.PoolSize, opt.PipelinePoolSize, tc.pool, tc.pipeline)
			}
		})
	}
	for _, bad := range []string{"0", "1", "-1", "ten", "1001"} {
		_, err := config.Load(env(map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "REKEY_REDIS_POOL_SIZE": bad}))
		if err == nil || !strings.Contains(err.Error(), "REKEY_REDIS_POOL_SIZE") {
			t.Errorf("REKEY_REDIS_POOL_SIZE=%q: Load() = %v, want an error naming it", bad, err)
		}
	}
}

// A negative pool_size in REDIS_URL, which would make go-redis panic at
// start, stops the process with a sentence naming it and not the URL's
// password.
func TestRedisURLNegativePoolSize(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0?pool_size=-1"}))
	if err == nil || !strings.Contains(err.Error(), "pool_size") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Load() = %v; want an error naming pool_size, without the password", err)
	}
}
