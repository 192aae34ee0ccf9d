package main

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// A REDIS_URL mistyped in its scheme (redis//host, a ':' left out) or
// naming a database the server does not have is refused in rekey's words,
// naming REDIS_URL and what is wrong with it, never its password: not
// with go-redis's "invalid URL scheme" or Redis's "ERR DB index is out of
// range".
func TestRedisURLMistakesAreSaidInRekeysWords(t *testing.T) {
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	for _, tc := range []struct{ url, want string }{
		{"redis//:hunter2@" + r.Addr + "/0", "REDIS_URL does not start with redis:// or rediss://"},
		{"redis:hunter2@" + r.Addr + "/0", "REDIS_URL does not start with redis:// or rediss://"},
		{"http://:hunter2@" + r.Addr + "/0", "REDIS_URL starts with http://, not redis:// or rediss://"},
		{"localhost:" + strings.Split(r.Addr, ":")[1], "REDIS_URL does not start with redis:// or rediss://"},
		{"redis://:hunter2@" + r.Addr + "/99", "REDIS_URL names database 99, which the Redis at " + r.Addr + " does not have"},
	} {
		vars := map[string]string{"REDIS_URL": tc.url, "REKEY_ENCRYPTION_KEYS": base64.StdEncoding.EncodeToString(testKey)}
		env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
			stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
		err := runCommand(context.Background(), env, "holds", "list")
		if err == nil || isUsage(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("REDIS_URL %s: err = %v, want %q (exit 1)", tc.url, err, tc.want)
			continue
		}
		for _, theirs := range []string{"hunter2", "invalid URL scheme", "ERR ", "redis: "} {
			if strings.Contains(err.Error(), theirs) {
				t.Errorf("REDIS_URL %s: err = %v, holds %q", tc.url, err, theirs)
			}
		}
	}
}
