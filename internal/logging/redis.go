package logging

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/secret"
)

// urlUserinfo matches the user and password part of a URL ("//user:pw@").
var urlUserinfo = regexp.MustCompile(`//[^/@\s]*@`)

// Redact returns text with every secret value and any URL's user and
// password replaced by a redaction, for free text from a library (an error
// from go-redis naming REDIS_URL, say) before it reaches a log line.
// Empty secrets are ignored.
func Redact(text string, secrets ...secret.String) string {
	for _, s := range secrets {
		if !s.IsZero() {
			text = strings.ReplaceAll(text, s.Reveal(), secret.Redacted)
		}
	}
	return urlUserinfo.ReplaceAllString(text, "//"+secret.Redacted+"@")
}

// GoRedis adapts a zerolog.Logger to go-redis's internal logger; install it
// with redis.SetLogger so the library's own lines (a failed dial, a pool
// that gave up) are JSON like every other line.
type GoRedis struct {
	L zerolog.Logger
	// Quiet, when set and true, demotes lines to debug: while Redis is down
	// go-redis repeats the same dial error on every command, and the health
	// watcher's one redis_down line already said it.
	Quiet func() bool
	// Redact cleans a line before it is written; nil keeps it as it is.
	Redact func(string) string
}

// Printf logs one line of go-redis at warn level (go-redis logs only what
// went wrong) or at debug level while Quiet.
func (g GoRedis) Printf(_ context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if g.Redact != nil {
		msg = g.Redact(msg)
	}
	level := zerolog.WarnLevel
	if g.Quiet != nil && g.Quiet() {
		level = zerolog.DebugLevel
	}
	g.L.WithLevel(level).Str("component", "go-redis").Msg(strings.TrimSpace(msg))
}

// QuietWhile returns l with warnings and errors dropped while quiet()
// holds. It is for components that only talk to Redis (the metrics
// recorder, the sweeps): during an outage each of their retries would log
// the same connection error, and the health watcher's one redis_down line
// already said it.
func QuietWhile(l zerolog.Logger, quiet func() bool) zerolog.Logger {
	return l.Hook(zerolog.HookFunc(func(e *zerolog.Event, level zerolog.Level, _ string) {
		if level >= zerolog.WarnLevel && level <= zerolog.ErrorLevel && quiet() {
			e.Discard()
		}
	}))
}

// RedactErrors is a go-redis hook that removes secrets (REDIS_URL's
// password) from the errors of commands, for every caller at once: the
// store's, asynq's, asynqmon's answers, the lines that log them. Redis
// quotes a command's arguments in some errors ("unknown command 'auth',
// with args beginning with: 'pw'", from a server with AUTH renamed away,
// or a proxy), and go-redis's connecting sends the password, so its error
// reaches every command run on that connection. Only Redis's error
// replies (redis.Error) are looked at: one quoting a secret is replaced by
// its redacted text, its first word (the reply's code) kept, still a Redis
// error; any other error is returned as it is.
type RedactErrors struct {
	Secrets []secret.String
}

// DialHook leaves dialling as it is: a dial's error holds no password.
func (h RedactErrors) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook redacts the command's error.
func (h RedactErrors) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.redact(cmd, next(ctx, cmd))
	}
}

// ProcessPipelineHook redacts the pipeline's error and each command's.
func (h RedactErrors) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			h.redact(cmd, cmd.Err())
		}
		return h.redact(nil, err)
	}
}

// redact returns err with its secrets removed, and sets it as cmd's error
// when it changed.
func (h RedactErrors) redact(cmd redis.Cmder, err error) error {
	if err == nil || slices.Contains(ownErrors, err) {
		return err
	}
	// Only Redis's error replies quote what was sent; other errors (a
	// dial's, a timeout) are returned as they are, their types intact for
	// go-redis's retries and health.RedisUnreachable.
	if _, ok := errors.AsType[redis.Error](err); !ok {
		return err
	}
	// The reply's first word, its code, is kept whatever the password:
	// go-redis and its callers read it (NOSCRIPT, LOADING, BUSY).
	code, text, _ := strings.Cut(err.Error(), " ")
	// Redis quotes at most 128 bytes of a command's arguments: a long
	// password comes back cut short, which secret.Scrub finds too.
	clean := Redact(secret.Scrub(text, h.Secrets...))
	if clean == text {
		return err
	}
	redacted := redactedRedisError{errors.New(code + " " + clean)}
	if cmd != nil {
		cmd.SetErr(redacted)
	}
	return redacted
}

// ownErrors are go-redis's and context's own errors: their text is the
// library's and quotes nothing Redis was sent, and callers tell them by
// identity (asynq's dequeue compares err == redis.Nil), so a password that
// is a word of it ("redis", "nil") must not replace them.
var ownErrors = []error{redis.Nil, redis.TxFailedErr, redis.ErrClosed, redis.ErrPoolTimeout,
	context.Canceled, context.DeadlineExceeded}

// redactedRedisError is a Redis error with its secrets removed.
type redactedRedisError struct{ error }

// RedisError marks it a Redis error, as the one it replaces.
func (redactedRedisError) RedisError() {}
