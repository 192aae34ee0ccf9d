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

// net/url's errors quote the part of the URL they stumbled on: a bad
// escape in the password ("p%zzsecret") put "%zz" and the characters
// around it into the error; a bad host quotes the host, where an operator
// may have pasted the password.
func TestRedisURLParseErrorsQuoteNoPassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"redis://:p%zzsecretpw@127.0.0.1:6391/0", "redis://:pw%2@127.0.0.1:6391/0",
		"redis://h%zzost:6379/0", "redis://:secretpw@ho st:6379/0", "redis://secretpw%@127.0.0.1:6379/0",
		"redis://:secr/etpw@127.0.0.1:6379/0", "redis://h:secretpw/x@127.0.0.1:6379/0", "redis://:secr#etpw@127.0.0.1:6379/0",
		"redis://:secr?etpw@127.0.0.1:6379/0"} {
		_, err := config.Load(env(map[string]string{"REDIS_URL": u}))
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("REDIS_URL=%s: Load() = %v, want an error naming REDIS_URL", u, err)
			continue
		}
		for _, part := range []string{"%zz", "zz", "secr", "ho st", "h%", "pw", "etpw"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("REDIS_URL=%s: the error quotes %q: %v", u, part, err)
			}
		}
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
	for _, bad := range []string{"-1", "1000000"} {
		cfg, err := config.Load(env(map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0?pool_size=" + bad}))
		if err == nil {
			_, err = cfg.RedisOptions()
		}
		if err == nil || !strings.Contains(err.Error(), "pool_size must be from 1 to 1000") {
			t.Errorf("REDIS_URL's pool_size=%s: err = %v, want it refused", bad, err)
		}
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

// HEROKU_API_URL and HEROKU_ID_URL receive OAuth tokens, the OAuth client
// secret and every new credential's config: plain http:// only to this
// machine. rekey adds Heroku's paths to them: a path (the token endpoint
// pasted whole) failed every provisioning as a refused grant.
func TestHerokuURLs(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"HEROKU_API_URL", "HEROKU_ID_URL"} {
		for _, ok := range []string{"https://api.heroku.com", "https://id.heroku.com/", "http://127.0.0.1:5001", "http://localhost:5001", "http://[::1]:5001"} {
			if _, err := config.Load(env(map[string]string{name: ok})); err != nil {
				t.Errorf("%s=%s: Load() = %v, want it accepted", name, ok, err)
			}
		}
		for bad, want := range map[string]string{
			"http://api.heroku.com":             "must be https://",
			"http://localhost.evil.example":     "must be https://",
			"https://id.heroku.com/oauth/token": "without a path",
			"http://127.0.0.1:5001/api":         "without a path",
		} {
			_, err := config.Load(env(map[string]string{name: bad}))
			if err == nil || !strings.Contains(err.Error(), name+" must") || !strings.Contains(err.Error(), want) {
				t.Errorf("%s=%s: Load() = %v, want an error saying %q", name, bad, err, want)
			}
		}
	}
}

// A REDIS_URL that go-redis would read as another server than the one
// meant is refused, naming no part of it: one built from a variable left
// unset names no host (go-redis would fill in localhost), and a '#' in a
// password ends the URL there (the password and the host after it lost),
// and a negative database number would run on database 0.
func TestRedisURLThatWouldReachAnotherServerIsRefused(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]string{
		"redis://:6379/0":                         "names no host",
		"redis://:s3cretpw@:6379/0":               "names no host",
		"rediss://:s3cretpw@:6380":                "names no host",
		"redis://:1234#s3cretpw@10.1.2.3:6379/0":  "'#'",
		"redis://:s3cretpw@10.1.2.3:6379/-1":      "database number must be 0 or more",
		"redis://:s3cretpw@10.1.2.3:6379/13?db=2": `names database "13" in its path and "2" in ?db=: name one`,
	} {
		_, err := config.Load(env(map[string]string{"REDIS_URL": u}))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("REDIS_URL=%s: got %v, want an error saying %q that quotes no password", u, err, want)
		}
	}
	for _, u := range []string{"redis://localhost:6379/0", "rediss://:pw@ec2-1-2-3-4.compute-1.amazonaws.com:6380"} {
		if _, err := config.Load(env(map[string]string{"REDIS_URL": u})); err != nil {
			t.Errorf("REDIS_URL=%s: %v", u, err)
		}
	}
}

// REKEY_REDIS_VERIFY_TLS=true is not silently undone by REDIS_URL: a
// skip_verify=true in its query, or a redis:// URL, which has no TLS at all
// and sends the password in clear, is refused.
func TestRedisVerifyTLSIsNotUndoneByTheURL(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]string{
		"rediss://:pw@redis.example.com:6380/0?skip_verify=true": "skip_verify",
		"redis://:pw@redis.example.com:6379/0":                   "not rediss://",
	} {
		_, err := config.Load(env(map[string]string{"REDIS_URL": u, "REKEY_REDIS_VERIFY_TLS": "true"}))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("REDIS_URL=%s with REKEY_REDIS_VERIFY_TLS=true: got %v, want an error saying %q", u, err, want)
		}
	}
	c, err := config.Load(env(map[string]string{"REDIS_URL": "rediss://:pw@redis.example.com:6380/0", "REKEY_REDIS_VERIFY_TLS": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if opt, err := c.RedisOptions(); err != nil || opt.TLSConfig == nil || opt.TLSConfig.InsecureSkipVerify {
		t.Errorf("rediss:// with REKEY_REDIS_VERIFY_TLS=true: got %+v, %v; want TLS that verifies", opt, err)
	}
}
