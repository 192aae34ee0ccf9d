package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// oldRedis serves enough of the Redis protocol to play a Redis 5.0 server
// (PING, TIME, INFO; every other command answers an error) on loopback
// until t ends, and returns its redis:// URL.
func oldRedis(t *testing.T) string {
	t.Helper()
	return "redis://" + fakeRedis(t, answerAsOldRedis) + "/0"
}

// fakeRedis accepts connections on loopback until t ends, reads each
// connection's commands and writes what answer returns for each (a reply
// in the Redis protocol), and returns its address.
func fakeRedis(t *testing.T, answer func(args []string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					args, err := readCommand(r)
					if err != nil {
						return
					}
					if _, err := io.WriteString(conn, answer(args)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// answerAsOldRedis answers as a Redis 5.0 server would PING, TIME and
// INFO, and every other command with an error.
func answerAsOldRedis(args []string) string {
	switch strings.ToUpper(args[0]) {
	case "PING":
		return "+PONG\r\n"
	case "TIME":
		now := time.Now()
		s, us := strconv.FormatInt(now.Unix(), 10), strconv.Itoa(now.Nanosecond()/1000)
		return fmt.Sprintf("*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(s), s, len(us), us)
	case "INFO":
		info := "# Server\r\nredis_version:5.0.7\r\n# Memory\r\nmaxmemory_policy:noeviction\r\n"
		return fmt.Sprintf("$%d\r\n%s\r\n", len(info), info)
	}
	return "-ERR unknown command '" + args[0] + "'\r\n"
}

// readCommand reads one command, an array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("not a command: %q", line)
	}
	args := make([]string, n)
	for i := range args {
		if line, err = r.ReadString('\n'); err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// serviceEnv is an environment for a rekey process on redisURL, with its
// output in stderr.
func serviceEnv(redisURL string, stderr *syncBuffer) *environ {
	vars := map[string]string{"REDIS_URL": redisURL, "REKEY_ENCRYPTION_KEYS": base64.StdEncoding.EncodeToString(testKey),
		"REKEY_HEROKU_RATE": "4000"}
	return &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: stderr}
}

// TestRedisOlderThanTheMinimumIsRefused runs a one-shot command and the
// clock against a Redis 5.0: both refuse it with a sentence naming the
// version rekey needs, rather than start and fail every sweep.
func TestRedisOlderThanTheMinimumIsRefused(t *testing.T) {
	url := oldRedis(t)
	for _, args := range [][]string{{"batches", "list"}, {"scheduler"}} {
		t.Run(args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := runCommand(ctx, serviceEnv(url, &syncBuffer{}), args[0], args[1:]...)
			if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), "version 5.0.7") ||
				!strings.Contains(err.Error(), "Redis 6.0 or later") {
				t.Errorf("rekey %s on Redis 5.0.7: %v (timed out: %v), want a refusal naming Redis 6.0",
					strings.Join(args, " "), err, ctx.Err() != nil)
			}
		})
	}
}

// TestProcessWarnsWhenRedisMayEvict starts the clock on a Redis whose
// maxmemory-policy evicts keys: it logs redis_evicts at error level,
// naming the policy and the setting that stops it.
func TestProcessWarnsWhenRedisMayEvict(t *testing.T) {
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	if err := r.Client.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runCommand(ctx, serviceEnv(r.URL, &stderr), "scheduler") }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stderr.String(), "redis_evicts") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("rekey scheduler: %v", err)
	}
	out := stderr.String()
	var line string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "redis_evicts") {
			line = l
		}
	}
	for _, want := range []string{`"level":"error"`, "allkeys-lru", "--policy noeviction"} {
		if !strings.Contains(line, want) {
			t.Errorf("redis_evicts line %q lacks %s; log:\n%s", line, want, out)
		}
	}
}

// TestProcessWarnsWhenAnotherAppSharesTheDatabase starts the clock on a
// Redis whose database also holds another app's keys: it logs
// redis_shared at warn level, naming the database but no key. On a
// database holding rekey's keys alone it says nothing.
func TestProcessWarnsWhenAnotherAppSharesTheDatabase(t *testing.T) {
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	ctx := context.Background()
	for _, k := range []string{"rekey:own", "asynq:{default}:pending", "rate:rekey:ratelimit:{account}"} {
		if err := r.Client.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	scheduler := func() string {
		t.Helper()
		var stderr syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runCommand(ctx, serviceEnv(r.URL, &stderr), "scheduler") }()
		// The scheduler indexes the schedule once the server check is done
		// (clockMeasured waits for it).
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(stderr.String(), "schedule_indexed") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("rekey scheduler: %v", err)
		}
		return stderr.String()
	}
	if out := scheduler(); strings.Contains(out, "redis_shared") {
		t.Errorf("redis_shared logged on a database holding rekey's keys alone:\n%s", out)
	}
	if err := r.Client.Set(ctx, "sess:7f3a9c", "someone else's", 0).Err(); err != nil {
		t.Fatal(err)
	}
	out := scheduler()
	var line string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "redis_shared") {
			line = l
		}
	}
	for _, want := range []string{`"level":"warn"`, `"redis_db":0`, "database of its own"} {
		if !strings.Contains(line, want) {
			t.Errorf("redis_shared line %q lacks %s; log:\n%s", line, want, out)
		}
	}
	if strings.Contains(out, "sess:7f3a9c") {
		t.Errorf("the log names another app's key:\n%s", out)
	}
}
