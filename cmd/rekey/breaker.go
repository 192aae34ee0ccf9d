package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/breaker"
)

const breakerUsage = `usage: rekey breaker status [--json]                  open or closed and why, the bulk queue, the window now
       rekey breaker resume [--confirm] [--by NAME]   close the breaker: bulk and scheduled work runs again
                                                      (asks on a terminal; --confirm off one)`

// runBreaker runs one of the circuit breaker's operator subcommands.
func runBreaker(ctx context.Context, env *environ, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(env.stderr, breakerUsage)
		return errUsage
	}
	run, ok := map[string]func(context.Context, *environ, *breaker.Breaker, []string) error{
		"status": breakerStatus, "resume": resumeBreaker,
	}[args[0]]
	if !ok || len(args) > 1 && (args[1] == "-h" || args[1] == "--help") {
		fmt.Fprintln(env.stderr, breakerUsage)
		return errUsage
	}
	a, err := openProducer(ctx, env, "breaker")
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := a.breaker()
	if err != nil {
		return err
	}
	return run(ctx, env, b, args[1:])
}

func breakerStatus(ctx context.Context, env *environ, b *breaker.Breaker, args []string) error {
	fs := flag.NewFlagSet("breaker status", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	s, err := b.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	writeBreakerStatus(env.stdout, s)
	return nil
}

func writeBreakerStatus(w io.Writer, s breaker.Status) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-11s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	line("breaker", "%s", s.Line())
	if s.BulkPaused {
		line("bulk queue", "paused: fleet waves and scheduled rotations wait; interactive, default and revoke queues run")
	} else {
		line("bulk queue", "running")
	}
	if s.Policy.Threshold == 0 {
		line("policy", "off (REKEY_BREAKER_THRESHOLD=0): this process's configuration never opens it")
	} else {
		line("window now", "%d of %d distinct instances answered 401 or 403 in the last %s", s.Window.Denied, s.Window.Answered, s.Policy.Window)
		line("policy", "opens at %d distinct instances answering 401 or 403, at least %g of those answered, within %s",
			s.Policy.Threshold, s.Policy.Fraction, s.Policy.Window)
	}
	openings := fmt.Sprintf("%d", s.Openings)
	if s.ResumedAt != nil {
		openings += fmt.Sprintf("; last resumed %s by %s", s.ResumedAt.UTC().Format(time.RFC3339), s.ResumedBy)
	}
	line("openings", "%s", openings)
}

// errNotConfirmed refuses a resume nobody confirmed.
var errNotConfirmed = errors.New("breaker not resumed: answer y on a terminal, or pass --confirm")

func resumeBreaker(ctx context.Context, env *environ, b *breaker.Breaker, args []string) error {
	fs := flag.NewFlagSet("breaker resume", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	confirm := fs.Bool("confirm", false, "resume without asking (required when not on a terminal)")
	by := fs.String("by", "operator", "who resumes, for the status")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	s, err := b.Status(ctx)
	if err != nil {
		return err
	}
	if !s.Open && !s.BulkPaused {
		fmt.Fprintln(env.stdout, "the breaker is closed and the bulk queue runs: nothing to resume")
		return nil
	}
	if !*confirm && !askResume(env, s) {
		return errNotConfirmed
	}
	if _, err := b.Resume(ctx, *by); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "breaker resumed: the bulk queue runs and the scheduler enqueues again")
	return nil
}

// askResume shows why the breaker opened and asks for a y, on a terminal
// only: piped input is no operator's answer.
func askResume(env *environ, s breaker.Status) bool {
	if !readsTerminal(env.stdin) {
		return false
	}
	fmt.Fprintf(env.stdout, "breaker: %s\n", s.Line())
	fmt.Fprint(env.stdout, "Has Heroku recovered (client secret, partner account)? Resume bulk and scheduled work? [y/N] ")
	answer, _ := bufio.NewReader(env.stdin).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

// readsTerminal reports whether r is a terminal.
func readsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
