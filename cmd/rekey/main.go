// Command rekey rotates the credentials of Heroku add-on instances.
//
//	rekey worker               run rotate and revoke tasks (Procfile: worker)
//	rekey web                  HTTP API, SSO dashboard, /monitoring, /metrics (Procfile: web)
//	rekey rotate ID...         rotate instances (--all, --from FILE, --plan)
//	rekey batches show ID      a batch's progress (--wait), or cancel it
//	rekey scheduler            scheduled rotation (Procfile: clock); status, pause, resume
//	rekey instances ...        import or show instances
//	rekey revocations ...      list or retry revocations refused permanently
//	rekey breaker status       the circuit breaker: open or closed, and why; resume
//	rekey keys status|reseal   sealed values per encryption key; reseal under the first
//	rekey dev                  everything in one process, on fakes
//	rekey demo-issuer          a demo credential issuer for local runs (not for production)
//
// Configuration comes from the environment (see README.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *environ, args []string) error
}

// environ is what a command reads and writes besides its arguments.
type environ struct {
	lookup func(string) (string, bool)
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"worker":      {"run the asynq worker: rotate and revoke tasks", runWorkerCmd},
		"web":         {"run the HTTP API, SSO dashboard, /monitoring and /metrics", runWeb},
		"batches":     {"show or cancel a batch: batches show ID [--wait] | cancel ID", runBatches},
		"scheduler":   {"run the clock: sweep due instances and enqueue scheduled rotations; pause|resume|status", runScheduler},
		"rotate":      {"rotate instances: rekey rotate ID... | --all | --from FILE", runRotate},
		"instances":   {"manage instances: import FILE | show ID", runInstances},
		"revocations": {"revocations refused permanently: dead [--json] | retry ID... | --all", runRevocations},
		"dev":         {"run rekey on an embedded Redis, a fake Heroku and a demo issuer", runDev},
		"breaker":     {"the circuit breaker on Heroku 401/403 runs: status [--json] | resume [--confirm]", runBreaker},
		"keys":        {"encryption keys: status [--json] | reseal (values per key; move them to the first)", runKeys},
		"demo-issuer": {demoIssuerSummary, runDemoIssuer},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &environ{lookup: os.LookupEnv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if err := run(ctx, env, os.Args[1:]); err != nil {
		printError(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, env *environ, args []string) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stdout, cmds)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(env.stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
	}
	err := c.run(ctx, env, args[1:])
	if errors.Is(err, errUsage) {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return err
}

var errUsage = errors.New("bad usage (see --help)")

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("rekey rotates the credentials of Heroku add-on instances.\n\nUsage: rekey COMMAND [flags]\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-12s %s\n", n, cmds[n].summary)
	}
	b.WriteString("\nRun 'rekey COMMAND --help' for a command's flags.\n")
	fmt.Fprint(w, b.String())
}
