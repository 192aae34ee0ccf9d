// Command rekey rotates the credentials of Heroku add-on instances.
//
//	rekey worker               run rotate and revoke tasks (Procfile: worker)
//	rekey web                  HTTP API, SSO dashboard, /monitoring, /metrics (Procfile: web)
//	rekey rotate ID...         rotate instances (--all, --from FILE, --plan, --json)
//	rekey batches show ID      a batch's progress (--wait), or cancel it
//	rekey scheduler            scheduled rotation (Procfile: clock); status, pause, resume
//	rekey instances ...        import or show instances
//	rekey revocations ...      list or retry revocations refused permanently
//	rekey holds ...            list held revocations, or release one
//	rekey breaker status       the circuit breaker: open or closed, and why; resume
//	rekey keys status|reseal   sealed values per encryption key; reseal under the first
//	rekey dev                  everything in one process, on fakes
//	rekey demo-issuer          a demo credential issuer for local runs (not for production)
//	rekey completion SHELL     shell completion (bash, zsh, fish, powershell)
//
// The command tree is in root.go. Configuration comes from the environment
// (see README.md). Exit status: 0 on success and for --help, 1 when a
// command fails, 2 when it was called wrongly, 3 when a fleet rotation
// left instances out at the REKEY_MAX_PREVIOUS cap, 130 when interrupted
// (Ctrl-C, or any signal at a [y/N] question), and 128 + the signal's
// number when a second signal cut a process's drain short.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// environ is what a command reads and writes besides its arguments.
type environ struct {
	lookup func(string) (string, bool)
	// names are the environment's variable names, for the warning about
	// REKEY_ settings rekey does not read (config.Unknown).
	names  []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// terminal says stdin is a terminal, so a person can answer a
	// question; piped input is no operator's answer.
	terminal bool
}

func main() {
	// SIGHUP (a closed terminal or ssh session) stops like SIGTERM: a
	// worker drains and withdraws its announcements rather than die.
	ctx, stop := notifyContext(context.Background(), os.Stderr, os.Exit, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	env := &environ{lookup: os.LookupEnv, names: environNames(os.Environ()), stdin: os.Stdin, stdout: os.Stdout,
		stderr: os.Stderr, terminal: isTerminal(os.Stdin)}
	if err := run(ctx, env, os.Args[1:]); err != nil {
		code := report(os.Stderr, err)
		stop()
		os.Exit(code)
	}
}

// run runs the command args name. A command that Ctrl-C stopped returns
// an *interruptedError, whatever it returned itself (onCtrlC).
func run(ctx context.Context, env *environ, args []string) error {
	root := newRootCmd(env)
	// cobra prints help (--help, rekey help CMD) to its out and drops the
	// write's error: out keeps it, so help that could not be written fails
	// as any other output does.
	out := &writeErrKeeper{w: env.stdout}
	root.SetOut(out)
	root.SetArgs(helpLast(root, longFlags(root, args)))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		err = out.err
	}
	path := "rekey"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	if u, ok := asUsage(err); ok && u.path == "" {
		u.path = path
	}
	return onCtrlC(ctx, cmd, path, err)
}

// writeErrKeeper is a writer that keeps the first error of a write to w.
type writeErrKeeper struct {
	w   io.Writer
	err error
}

func (k *writeErrKeeper) Write(p []byte) (int, error) {
	n, err := k.w.Write(p)
	if err != nil && k.err == nil {
		k.err = err
	}
	return n, err
}

// report prints err and returns the exit status: 2 and a one-line hint for
// a usage error, 130 for an interrupted command (Ctrl-C, or a signal at a
// question), 3 for a fleet request that left instances out
// (leftOutError), 1 and the error's sentences for any other failure.
func report(w io.Writer, err error) int {
	if u, ok := asUsage(err); ok {
		fmt.Fprintln(w, u.hint())
		return 2
	}
	printError(w, err)
	if _, ok := asInterrupted(err); ok {
		return exitInterrupted
	}
	var leftOut *leftOutError
	if errors.As(err, &leftOut) {
		return exitLeftOut
	}
	return 1
}

// environNames returns the names of os.Environ's NAME=value entries.
func environNames(entries []string) []string {
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if name, _, ok := strings.Cut(e, "="); ok {
			names = append(names, name)
		}
	}
	return names
}
