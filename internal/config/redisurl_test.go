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
