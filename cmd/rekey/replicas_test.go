package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// A process started with REKEY_REDIS_WAIT_REPLICAS says at start, at error
// level, when its workers would mint, push and revoke nothing: fewer
// replicas connected than the setting asks (redis_replicas_missing), or a
// Redis that refuses WAIT, and INFO with it, as a proxy may
// (redis_wait_failed). With the replicas it asks for, it says neither.
func TestAProcessSaysWhenItsWorkersCannotWaitForTheReplicas(t *testing.T) {
	primary, _ := redistest.StartReplicated(t)
	ctx := context.Background()
	// A user that may run every command but WAIT and INFO.
	if err := primary.Client.Do(ctx, "acl", "setuser", "nowait", "on", ">pw", "~*", "&*", "+@all", "-wait", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(testKey)
	if err != nil {
		t.Fatal(err)
	}
	check := func(want int, user string) string {
		rdb := redis.NewClient(&redis.Options{Addr: primary.Addr, Username: user, Password: map[string]string{"nowait": "pw"}[user]})
		t.Cleanup(func() { _ = rdb.Close() })
		var logs syncBuffer
		a := &app{cfg: &config.Config{RedisWaitReplicas: want}, rdb: rdb, store: store.New(rdb, sealer, store.WithDurability(want)),
			log: zerolog.New(&logs), redact: func(s string) string { return s }}
		if err := a.checkServer(ctx, true); err != nil {
			t.Fatalf("checkServer: %v", err)
		}
		return logs.String()
	}
	for _, c := range []struct {
		want  int
		user  string
		lines []string
	}{
		{1, "", nil},
		{0, "nowait", nil},
		{2, "", []string{"redis_replicas_missing", `"replicas":1`, `"wait_for":2`}},
		{1, "nowait", []string{"redis_wait_failed", `"wait_for":1`, "lower the setting to 0"}},
	} {
		out := check(c.want, c.user)
		for _, line := range c.lines {
			if !strings.Contains(out, line) || !strings.Contains(out, `"level":"error"`) {
				t.Errorf("REKEY_REDIS_WAIT_REPLICAS=%d, user %q: log lacks %s at error level:\n%s", c.want, c.user, line, out)
			}
		}
		if c.lines == nil && (strings.Contains(out, "redis_replicas_missing") || strings.Contains(out, "redis_wait_failed")) {
			t.Errorf("REKEY_REDIS_WAIT_REPLICAS=%d, user %q: a warning with the replicas it asks for:\n%s", c.want, c.user, out)
		}
	}
}
