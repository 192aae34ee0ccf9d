package main

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestHelpFlagBeforeTheCommand: `rekey --help rotate` and `rekey -h
// rotate`, as `git --help commit` or `heroku --help apps` are typed, printed
// rekey's own help, not rotate's: cobra took --help for a flag with a value
// and "rotate" for that value, since the help flag is only defined once a
// command runs. Each now prints the help of the command it names, as
// `rekey rotate --help` does, wherever it comes among the command names.
func TestHelpFlagBeforeTheCommand(t *testing.T) {
	help := func(args ...string) string {
		t.Helper()
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		env := &environ{lookup: func(string) (string, bool) { return "", false }, stdin: strings.NewReader(""),
			stdout: stdout, stderr: stderr}
		if err := run(context.Background(), env, args); err != nil || stderr.String() != "" {
			t.Fatalf("rekey %s: %v %s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	for _, path := range [][]string{{"rotate"}, {"dev"}, {"batches", "show"}, {"scheduler", "status"}} {
		want := help(append(slices.Clone(path), "--help")...)
		for _, flag := range []string{"--help", "-h"} {
			for i := range path {
				args := slices.Concat(path[:i], []string{flag}, path[i:])
				if got := help(args...); got != want {
					t.Errorf("rekey %s printed another command's help:\n%.200s\nwant:\n%.200s",
						strings.Join(args, " "), got, want)
				}
			}
		}
	}
}
