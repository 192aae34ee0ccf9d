package main

import (
	"context"
	"crypto/tls"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// fillUp sets the maxclients of c's Redis to the connections already open
// (the test's own), as a Heroku Key-Value Store plan is once the
// formation's pools hold every connection it allows: Redis answers each
// new connection with "-ERR max number of clients reached" and closes it
// (over TLS it closes it before the handshake, without a word).
func fillUp(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	info, err := c.Info(ctx, "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	open := 0
	for l := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_clients:"); ok {
			open, _ = strconv.Atoi(v)
		}
	}
	if err := c.ConfigSet(ctx, "maxclients", strconv.Itoa(open)).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestARedisAtMaxclientsIsNamed runs the real binary against a Redis that
// refuses new connections for having reached maxclients, over plain TCP
// and over TLS: a one-shot command exits 1 saying so and naming
// REKEY_REDIS_POOL_SIZE, where it printed "write: broken pipe" (go-redis
// writes its HELLO to a connection Redis has already closed, and never
// reads Redis's reason) or "EOF"; the clock's redis_down line says the
// same, not "Redis does not answer".
func TestARedisAtMaxclientsIsNamed(t *testing.T) {
	plain := redistest.StartServerAt(t, redistest.FreePort(t))
	fillUp(t, plain.Client)
	tlsAddr := redistest.StartTLSServer(t)
	tlsClient := redis.NewClient(&redis.Options{Addr: tlsAddr,
		TLSConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}) //nolint:gosec // the test's self-signed server
	t.Cleanup(func() { _ = tlsClient.Close() })
	fillUp(t, tlsClient)

	for name, url := range map[string]string{"plain": plain.URL, "tls": "rediss://" + tlsAddr + "/0"} {
		vars := map[string]string{"REDIS_URL": url, "REKEY_ENCRYPTION_KEYS": newCLI(t).vars()["REKEY_ENCRYPTION_KEYS"],
			"REKEY_HEROKU_RATE": "4000"}
		wants := []string{"maxclients", "REKEY_REDIS_POOL_SIZE"}

		t.Run(name+"/command", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, rekeyBinary(t), "batches", "list")
			for k, v := range vars {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			if code := exitCode(err); code != 1 {
				t.Fatalf("rekey batches list on a full Redis exited %d, want 1:\n%s", code, out)
			}
			for _, want := range wants {
				if !strings.Contains(string(out), want) {
					t.Errorf("rekey batches list on a full Redis printed %q, want it to name %s", out, want)
				}
			}
		})

		t.Run(name+"/clock", func(t *testing.T) {
			cmd, _, stderr := startRekey(t, vars, func(_, stderr string) bool { return strings.Contains(stderr, "redis_down") },
				"scheduler")
			var line string
			for l := range strings.Lines(stderr.String()) {
				if strings.Contains(l, "redis_down") {
					line = l
				}
			}
			for _, want := range wants {
				if !strings.Contains(line, want) {
					t.Errorf("the clock's redis_down line on a full Redis is %q, want it to name %s", line, want)
				}
			}
			_ = cmd.Process.Kill()
		})
	}
}
