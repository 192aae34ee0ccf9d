package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
)

func TestRedactRemovesSecretsAndURLPasswords(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"dial redis://h:pw1@db:6379 failed":            "dial redis://[redacted]@db:6379 failed",
		"rediss://:pw2@db.example.com:25061/0 refused": "rediss://[redacted]@db.example.com:25061/0 refused",
		"auth failed for s3cr3t-value":                 "auth failed for [redacted]",
		"connection refused":                           "connection refused",
	}
	for in, want := range cases {
		if got := logging.Redact(in, secret.New("s3cr3t-value"), secret.String{}); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGoRedisLinesAreJSON installs the adapter as go-redis's logger and
// makes go-redis fail to dial: its line arrives as JSON, scrubbed, at warn
// level, and at debug level while Quiet.
func TestGoRedisLinesAreJSON(t *testing.T) {
	var out bytes.Buffer
	quiet := false
	redis.SetLogger(logging.GoRedis{L: zerolog.New(&out).Level(zerolog.InfoLevel), Quiet: func() bool { return quiet },
		Redact: func(s string) string { return logging.Redact(s, secret.New("pw-in-url")) }})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	c := redis.NewClient(&redis.Options{Addr: addr, Password: "pw-in-url", MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	line := strings.TrimSpace(strings.SplitN(out.String(), "\n", 2)[0])
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("go-redis line is not JSON: %q", out.String())
	}
	if rec["level"] != "warn" || rec["component"] != "go-redis" || strings.Contains(out.String(), "pw-in-url") {
		t.Fatalf("go-redis line = %s", line)
	}
	out.Reset()
	quiet = true
	_ = c.Ping(context.Background()).Err()
	if out.Len() != 0 {
		t.Fatalf("a quiet adapter wrote at info level: %s", out.String())
	}
}

func TestQuietWhileDropsWarningsOnlyWhileQuiet(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	quiet := true
	l := logging.QuietWhile(zerolog.New(&out), func() bool { return quiet })
	l.Warn().Msg("dropped")
	l.Error().Msg("dropped too")
	l.Info().Msg("kept")
	quiet = false
	l.Warn().Msg("kept too")
	if got := out.String(); strings.Contains(got, "dropped") || strings.Count(got, "kept") != 2 {
		t.Fatalf("log = %s", got)
	}
}

// quotingRedisError is a Redis error reply, as go-redis returns one.
type quotingRedisError string

func (e quotingRedisError) Error() string { return string(e) }
func (quotingRedisError) RedisError()     {}

// Redis quotes at most 128 bytes of a command's arguments in "unknown
// command" errors, so a long REDIS_URL password comes back cut short:
// RedactErrors removes what of it the error holds, whole or cut, and the
// error is still a Redis error.
func TestRedactErrorsRemovesAPasswordCutShort(t *testing.T) {
	password := "p4ss-" + strings.Repeat("0123456789abcdef", 10)
	h := logging.RedactErrors{Secrets: []secret.String{secret.New(password)}}
	for _, quoted := range []string{password, password[:123]} {
		reply := quotingRedisError("ERR unknown command 'auth', with args beginning with: '" + quoted + "' ")
		cmd := redis.NewStatusCmd(context.Background(), "auth", "x")
		err := h.ProcessHook(func(context.Context, redis.Cmder) error { return reply })(context.Background(), cmd)
		if err == nil || strings.Contains(err.Error(), quoted[:20]) || strings.Contains(fmt.Sprint(cmd.Err()), quoted[:20]) {
			t.Errorf("a password of %d bytes quoted: err %v, cmd's %v; want it removed", len(quoted), err, cmd.Err())
		}
		if _, ok := errors.AsType[redis.Error](err); !ok || !strings.Contains(err.Error(), "unknown command 'auth'") {
			t.Errorf("the redacted error %v is not the Redis error it was", err)
		}
	}
}

// A REDIS_URL password that is a word of go-redis's own errors ("redis",
// "nil") leaves them as they are, on real Redis: callers tell them by
// identity (asynq's dequeue compares err == redis.Nil, the store asks
// errors.Is for a watched key's change), and their text quotes nothing
// Redis was sent. Replaced, an empty queue was a dequeue error each poll
// and a missing key a failure.
func TestRedactErrorsLeavesGoRedisOwnErrorsAsTheyAre(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	for _, password := range []string{"redis", "nil", "transaction"} {
		opt, err := redis.ParseURL(r.URL)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		defer c.Close()
		c.AddHook(logging.RedactErrors{Secrets: []secret.String{secret.New(password)}})
		if err := c.Get(ctx, "missing").Err(); err != redis.Nil {
			t.Errorf("password %q: GET of a missing key = %v, want redis.Nil itself", password, err)
		}
		if err := c.Eval(ctx, "return false", nil).Err(); err != redis.Nil {
			t.Errorf("password %q: a script answering nil = %v, want redis.Nil itself", password, err)
		}
		cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "missing"); return nil })
		if err := cmds[0].Err(); err != redis.Nil {
			t.Errorf("password %q: a pipeline's GET of a missing key = %v, want redis.Nil itself", password, err)
		}
		err = c.Watch(ctx, func(tx *redis.Tx) error {
			if err := r.Client.Set(ctx, "watched", password, 0).Err(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error { p.Set(ctx, "watched", "x", 0); return nil })
			return err
		}, "watched")
		if err != redis.TxFailedErr {
			t.Errorf("password %q: a transaction on a changed key = %v, want redis.TxFailedErr itself", password, err)
		}
	}
}

// Only Redis's own error replies quote what was sent, and go-redis and
// Redis's clients read the first word of a reply (NOSCRIPT sends EVAL
// after EVALSHA, LOADING and BUSY say to retry): a short password that is
// part of that word leaves it as it is, and an error that is no reply (a
// dial's, naming the address) is returned as it is, whatever it holds.
func TestRedactErrorsKeepsTheReplysCodeAndOtherErrors(t *testing.T) {
	h := logging.RedactErrors{Secrets: []secret.String{secret.New("NO"), secret.New("127")}}
	run := func(e error) (error, redis.Cmder) {
		cmd := redis.NewStatusCmd(context.Background(), "evalsha", "x")
		return h.ProcessHook(func(context.Context, redis.Cmder) error { return e })(context.Background(), cmd), cmd
	}
	err, _ := run(quotingRedisError("NOSCRIPT No matching script. Please use EVAL."))
	if err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT ") {
		t.Errorf("a NOSCRIPT reply with the password NO came back as %v; want its code kept", err)
	}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused"),
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6379}}
	if err, _ := run(dial); err != error(dial) {
		t.Errorf("a dial's error came back as %v (%T); want it as it was", err, err)
	}
}
