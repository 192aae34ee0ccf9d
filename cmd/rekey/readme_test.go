package main

import (
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestReadmeCommandsExist: every command the README's table of operator
// commands shows is one rekey runs, with the flags the row names: not a
// group that only lists its subcommands (exit 2), and no flag the command
// lacks.
func TestReadmeCommandsExist(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(&environ{lookup: func(string) (string, bool) { return "", false },
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.InitDefaultVersionFlag()
	row := regexp.MustCompile("(?m)^\\| `(rekey[^`]*)`")
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	flag := regexp.MustCompile(`--[a-z][a-z-]*`)
	group := reflect.ValueOf(unknownSubcommand).Pointer()
	rows := row.FindAllStringSubmatch(string(readme), -1)
	if len(rows) < 20 {
		t.Fatalf("found %d command rows in README.md; has the table moved?", len(rows))
	}
	for _, m := range rows {
		shown := m[1]
		var path []string
		for _, w := range strings.Fields(shown)[1:] {
			if !word.MatchString(w) {
				break
			}
			path = append(path, w)
		}
		c, rest, err := root.Find(path)
		if err != nil || len(rest) > 0 {
			t.Errorf("README shows `%s`: rekey has no command %q", shown, strings.Join(path, " "))
			continue
		}
		if c.Name() == "completion" {
			continue // cobra's: a shell name follows
		}
		if c.RunE != nil && reflect.ValueOf(c.RunE).Pointer() == group {
			var subs []string
			for _, s := range c.Commands() {
				subs = append(subs, s.Name())
			}
			t.Errorf("README shows `%s`, but `%s` alone only asks for a subcommand (%s), exit 2",
				shown, c.CommandPath(), strings.Join(subs, ", "))
			continue
		}
		c.InitDefaultHelpFlag()
		for _, f := range flag.FindAllString(shown, -1) {
			if !hasFlag(c, strings.TrimPrefix(f, "--")) {
				t.Errorf("README shows `%s`, but `%s` has no %s", shown, c.CommandPath(), f)
			}
		}
	}
}

func hasFlag(c *cobra.Command, name string) bool {
	return c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil
}
