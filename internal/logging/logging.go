// Package logging builds rekey's zerolog loggers and adapts asynq's logger
// to them, so every line a process writes is JSON in production and
// readable on a terminal in `rekey dev`.
//
// Secret values never reach a log line: they are secret.String values,
// which zerolog prints as a redaction, and errors from the Heroku and
// issuer clients name endpoints, never URLs with credentials.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/printable"
)

func init() {
	// zerolog keeps the time format in a package variable; set it once here
	// rather than in New, which may run concurrently.
	zerolog.TimeFieldFormat = time.RFC3339Nano
}

// Options say how to build the root logger.
type Options struct {
	// Service names the process ("worker", "web", "scheduler", "dev").
	Service string
	// Level is debug, info, warn or error; empty means info.
	Level string
	// Console writes human-readable lines instead of JSON.
	Console bool
	// NoColor writes Console lines without terminal colour codes: for
	// output that is not a terminal, or NO_COLOR.
	NoColor bool
	// Out is where lines go; nil means os.Stderr.
	Out io.Writer
}

// New returns the root logger of a process, with service fields.
func New(o Options) zerolog.Logger {
	out := o.Out
	if out == nil {
		out = os.Stderr
	}
	if o.Console {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: "15:04:05.000", NoColor: o.NoColor,
			FormatMessage: consoleMessage(o.NoColor)}
	}
	level, err := zerolog.ParseLevel(o.Level)
	if err != nil || o.Level == "" {
		level = zerolog.InfoLevel
	}
	l := zerolog.New(out).Level(level).With().Timestamp().Str("service", o.Service)
	if dyno := os.Getenv("DYNO"); dyno != "" {
		l = l.Str("dyno", dyno)
	}
	return l.Logger()
}

// consoleMessage writes a console line's message with its control and bidi
// characters as escapes (printable.Text). zerolog quotes a field's value
// but writes the message as it is, and a message may carry outside text:
// asynq's messages name the task they are about ("Retry exhausted for task
// id=%s"), whose id another app's task sets to anything. Messages are
// bold, as zerolog writes them.
func consoleMessage(noColor bool) zerolog.Formatter {
	return func(i any) string {
		if i == nil || i == "" {
			return ""
		}
		s := printable.Text(fmt.Sprint(i))
		if noColor {
			return s
		}
		return "\x1b[1m" + s + "\x1b[0m"
	}
}

// Asynq adapts a zerolog.Logger to asynq.Logger.
type Asynq struct {
	L zerolog.Logger
	// Quiet, when set and true, demotes warnings and errors to debug: while
	// Redis is down asynq's server repeats its connection errors every
	// second, and the health watcher's one redis_down line already said it.
	Quiet func() bool
}

// Debug logs at debug level.
func (a Asynq) Debug(args ...any) { a.L.Debug().Msg(fmt.Sprint(args...)) }

// Info logs at info level.
func (a Asynq) Info(args ...any) { a.L.Info().Msg(fmt.Sprint(args...)) }

// Warn logs at warn level, or debug while Quiet.
func (a Asynq) Warn(args ...any) { a.L.WithLevel(a.level(zerolog.WarnLevel)).Msg(fmt.Sprint(args...)) }

// Error logs at error level, or debug while Quiet.
func (a Asynq) Error(args ...any) {
	a.L.WithLevel(a.level(zerolog.ErrorLevel)).Msg(fmt.Sprint(args...))
}

func (a Asynq) level(l zerolog.Level) zerolog.Level {
	if a.Quiet != nil && a.Quiet() {
		return zerolog.DebugLevel
	}
	return l
}

// Fatal logs at fatal level and exits, as asynq expects.
func (a Asynq) Fatal(args ...any) { a.L.Fatal().Msg(fmt.Sprint(args...)) }
