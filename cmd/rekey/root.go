package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/printable"
)

// newRootCmd builds rekey's command tree. Each command's constructor lives
// beside its run logic, in the command's own file; adding a command is one
// line in the list below. cli_test.go walks this tree, so a new command is
// checked for help, usage errors and exit codes without further work.
func newRootCmd(env *environ) *cobra.Command {
	root := &cobra.Command{
		Use:   "rekey",
		Short: "rekey rotates the credentials of Heroku add-on instances",
		Long: `rekey rotates the credentials that a Heroku add-on provider hands its customers' apps through
config vars, through asynq tasks in Redis. The Procfile runs 'rekey web', 'rekey worker' and
'rekey scheduler'; the other commands are for operators. Configuration comes from the
environment (see README.md).`,
		Example: `  rekey dev --once                  everything in one process, on fakes
  rekey rotate inst-123             rotate one instance now
  rekey rotate --all --plan         what rotating the fleet would do, changing nothing
  rekey batches show BATCH --wait   follow a batch until it is done
  rekey completion bash > /etc/bash_completion.d/rekey`,
		Version:       version(),
		Args:          cobra.ArbitraryArgs,
		RunE:          helpOrUnknown,
		SilenceErrors: true, // main prints errors: a hint line (exit 2) or printError (exit 1)
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("rekey {{.Version}}\n")
	root.SetHelpCommand(newHelpCmd())
	root.SetFlagErrorFunc(flagError)
	root.PersistentPreRunE = noFlagAsValue
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.AddCommand(
		newWorkerCmd(env),
		newWebCmd(env),
		newSchedulerCmd(env),
		newRotateCmd(env),
		newBatchesCmd(env),
		newInstancesCmd(env),
		newRevocationsCmd(env),
		newBreakerCmd(env),
		newKeysCmd(env),
		newHoldsCmd(env),
		newDevCmd(env),
		newDemoIssuerCmd(env),
		newVersionCmd(env),
	)
	wrapCompletionCmd(root)
	trimNumberFlags(root)
	defineHelpFlags(root)
	return root
}

// defineHelpFlags gives c and its subcommands their --help and -h before
// the arguments are parsed. cobra defines them only on the command it
// runs, so while it looked for that command it took the --help of `rekey
// --help rotate` (as `git --help commit` is typed) for a flag with a
// value, skipped "rotate" as that value and printed rekey's own help.
func defineHelpFlags(c *cobra.Command) {
	c.InitDefaultHelpFlag()
	for _, sub := range c.Commands() {
		defineHelpFlags(sub)
	}
}

// trimmedValue is a flag value that ignores white space around what it is
// given.
type trimmedValue struct{ pflag.Value }

func (v trimmedValue) Set(s string) error { return v.Value.Set(strings.TrimSpace(s)) }

// trimNumberFlags makes every duration and number flag of c and its
// subcommands ignore white space around its value (--grace "2h "), as
// the settings do (REKEY_GRACE="2h "): pflag refused it, with Go's
// "unknown unit \"h \"", where the same value in the environment was
// taken. White space inside a value is still refused (flagError says so
// of a duration).
func trimNumberFlags(c *cobra.Command) {
	wrap := func(f *pflag.Flag) {
		switch f.Value.Type() {
		case "duration", "int", "int64", "uint", "uint64", "float64":
			f.Value = trimmedValue{f.Value}
		}
	}
	c.Flags().VisitAll(wrap)
	c.PersistentFlags().VisitAll(wrap)
	for _, sub := range c.Commands() {
		trimNumberFlags(sub)
	}
}

// wrapCompletionCmd makes cobra's completion command a group as rekey's
// own are: alone, or with a shell it does not know, it is a usage error
// (exit 2) naming the shells, not its help on stdout with exit status 0,
// which `rekey completion tcsh > file` would write into the file.
func wrapCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args = cobra.ArbitraryArgs
			c.RunE = unknownSubcommand
		}
	}
}

// flagError is a bad flag's usage error; an unknown --flag within two
// edits of one the command takes names it, as an unknown command does, a
// bad duration shows how one is written, since Go's own error ("missing
// unit", "unknown unit \"d\"") does not, and a value given to a flag that
// takes none (--confirm=yes, --set-period=90d) is said to be one, where
// strconv.ParseBool's error named none.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	var invalid *pflag.InvalidValueError
	if errors.As(err, &invalid) && invalid.GetFlag() != nil {
		switch f := invalid.GetFlag(); {
		case f.Name == "set-period":
			return setPeriodValueError(invalid.GetValue())
		case f.Value.Type() == "bool":
			msg = fmt.Sprintf("--%s takes no value, got %q: give --%s alone", f.Name, invalid.GetValue(), f.Name)
		case f.Value.Type() == "duration":
			msg += "; use a Go duration such as 2h or 90m (" + printable.DurationHint(invalid.GetValue()) + ")"
		}
	}
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		var known []string
		add := func(f *pflag.Flag) {
			if !f.Hidden {
				known = append(known, f.Name)
			}
		}
		c.Flags().VisitAll(add)
		c.InheritedFlags().VisitAll(add)
		if near := config.Nearest(name, known); near != "" {
			msg += "; did you mean --" + near + "?"
		}
	}
	return &usageError{msg: msg}
}

// newVersionCmd is `rekey version`, the same line as --version, for those
// used to `git version`, `kubectl version` or `heroku version`.
func newVersionCmd(env *environ) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS commit and Go version of this build (as --version)",
		Long: `Prints the module version, the VCS commit and the Go version the binary was built with, as
rekey --version does. A build from a tree without .git carries no commit unless built with
-ldflags "-X main.commit=$SOURCE_VERSION".`,
		Example: `  rekey version`,
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(env.stdout, "rekey %s\n", version())
			return err
		},
	}
}

// newHelpCmd is `rekey help CMD`: cobra's, except that an unknown command
// is a usage error rather than the root's help with exit status 0.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Prints a command's description, usage, examples and flags, as 'rekey COMMAND --help' does.",
		Example: `  rekey help rotate
  rekey help scheduler status`,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			var names []string
			if cmd, _, err := c.Root().Find(args); err == nil {
				for _, s := range cmd.Commands() {
					if s.IsAvailableCommand() && strings.HasPrefix(s.Name(), toComplete) {
						names = append(names, s.Name()+"\t"+s.Short)
					}
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("no command %q", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag() // as cobra's help does, so the usage lists them
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

// newGroupCmd is a command that only holds subcommands: alone, or with a
// subcommand it does not know, it is a usage error naming the ones it has.
func newGroupCmd(c *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.RunE = unknownSubcommand
	c.AddCommand(subs...)
	return c
}

// helpOrUnknown is the root's run: help when called alone (exit 0), as
// most CLIs do, else an unknown command.
func helpOrUnknown(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return c.Help()
	}
	return unknownSubcommand(c, args)
}

func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		var names []string
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		return usagef("name a command: %s", strings.Join(names, ", "))
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if strings.TrimSpace(args[0]) == "" {
		// Every name begins with "" (a script's unset variable), so
		// cobra suggested each one.
		return usagef("%s: the command name is empty", msg)
	}
	if c.SuggestionsMinimumDistance <= 0 {
		// cobra sets its default (2 edits) on the root alone.
		c.SuggestionsMinimumDistance = 2
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usagef("%s", msg)
}

// usageError is a mistake in how rekey was called: a bad flag, a missing
// or extra argument, an unknown command, a missing --confirm. main prints
// it as one hint line and exits 2; runtime failures exit 1.
type usageError struct {
	msg string
	// path is the command's path ("rekey rotate") the hint points to.
	path string
}

func (e *usageError) Error() string { return e.msg }

// hint is the one line printed for a usage error.
func (e *usageError) hint() string {
	return fmt.Sprintf("%s: %s (see '%s --help')", e.path, e.msg, e.path)
}

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// asUsage returns err's usage error, if it is one.
func asUsage(err error) (*usageError, bool) {
	var u *usageError
	return u, errors.As(err, &u)
}

// exactArgs accepts exactly n positional arguments, named by what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("takes %s, got %d arguments", what, len(args))
		}
		return nil
	}
}

// noArgs accepts no positional argument.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("takes no arguments, got %q", args[0])
	}
	return nil
}

// helpLast rewrites `rekey CMD... help [SUB...]` as `rekey help CMD...
// [SUB...]`, so that help works as a subcommand of every command, as it
// does of rekey itself: `rekey batches help`, `rekey rotate help` (where
// help would otherwise be taken for an instance id). Only a help right
// after command names counts, so an argument or a flag value named help
// stays one.
func helpLast(root *cobra.Command, args []string) []string {
	for i := 1; i < len(args); i++ {
		cmd, rest, err := root.Find(args[:i])
		if err != nil || len(rest) > 0 || cmd == root {
			return args
		}
		if args[i] == "help" {
			return slices.Concat([]string{"help"}, args[:i], args[i+1:])
		}
	}
	return args
}

// longFlags rewrites the single-dash spelling Go's flag package accepted
// (-all, -wait) to --all, so scripts written for it keep working; help
// and the README show only --flag. Only names of long flags some command
// defines are rewritten, and nothing after "--".
func longFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{"help": true, "version": true}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && names[name] {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// commit is the VCS commit for builds whose build info has none (a build
// from a source tree without .git, as on a Heroku build dyno), set with
// -ldflags "-X main.commit=$SOURCE_VERSION".
var commit string

// version is the module version and VCS commit from the build info:
// "(devel), commit 1849c6d0a1b2 (2026-11-30T13:00:00Z), go1.26.0".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (built without module information)"
	}
	rev, at, modified := commit, "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	vcs := "commit unknown (built without VCS information)"
	if rev != "" {
		vcs = "commit " + rev[:min(12, len(rev))]
		if modified == "true" {
			vcs += " with local changes"
		}
		if at != "" {
			vcs += " (" + at + ")"
		}
	}
	return fmt.Sprintf("%s, %s, %s", bi.Main.Version, vcs, bi.GoVersion)
}

// noFlagAsValue refuses (exit 2) a string flag whose value is another of
// the command's flags: in `rekey rotate inst-1 --reason --plan` the flag
// library takes "--plan" as the reason, and the rotation went out at once
// where a plan was asked. A value that only begins with a dash passes.
func noFlagAsValue(c *cobra.Command, _ []string) error {
	var err error
	c.Flags().Visit(func(f *pflag.Flag) {
		v := f.Value.String()
		if err != nil || f.Value.Type() != "string" || !strings.HasPrefix(v, "-") {
			return
		}
		name, _, _ := strings.Cut(strings.TrimLeft(v, "-"), "=")
		named := strings.HasPrefix(v, "--") && c.Flags().Lookup(name) != nil
		short := len(v) == 2 && c.Flags().ShorthandLookup(v[1:]) != nil
		if named || short {
			err = usagef("--%s took %q, another of its flags, as its value: give --%s its value first (--%s \"...\" %s)",
				f.Name, v, f.Name, f.Name, v)
		}
	})
	return err
}
